"""LanceDB as the retrieval engine: vectors (ANN index), full text (BM25) and hybrid search
fused by reciprocal rank, with the base filter applied inside each query (prefilter).

Embedded: a directory under the data dir. Shared: every API process and ingestion worker opens
the same URI (a shared directory, or object storage such as ``s3://bucket/path``); LanceDB's
commits are atomic, and ``read_consistency_interval=0`` makes each query see the latest commit
of any process.

LanceDB and PyArrow are imported at first use: they are a large share of a server's start-up.
A local index with no table yet (a new data dir) is created by the first operation that needs
it, so a process that never touches knowledge never imports them.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import warnings
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from uuid import UUID

# Lance's Rust side logs deprecation chatter at WARN for every hybrid query; errors still show
os.environ.setdefault("LANCEDB_LOG", "error")

from employeevirtual.knowledge.engine import (
    ChunkRow,
    EmbeddingMismatch,
    Hit,
    SearchMode,
)

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["LanceEngine"]

_LANCE_MODULES = ("pyarrow", "lancedb", "lancedb.index", "lancedb.rerankers")


def _import_lance() -> None:
    for name in _LANCE_MODULES:
        importlib.import_module(name)


async def _imported() -> None:
    """Imports LanceDB and PyArrow in a worker thread (seconds of CPU the first time): the
    event loop keeps answering other requests meanwhile. Later calls find them in
    ``sys.modules``."""
    await asyncio.to_thread(_import_lance)


log = logging.getLogger(__name__)

TABLE = "chunks"
_MODEL_KEY = b"embedding_model"


def _in(column: str, ids: Sequence[UUID]) -> str:
    # ids are UUIDs (validated types), so quoting them cannot inject anything
    return f"{column} IN ({', '.join(repr(str(UUID(str(i)))) for i in ids)})"


class LanceEngine:
    def __init__(
        self,
        uri: str,
        *,
        embedding_model: str,
        dimensions: int,
        ann_min_rows: int = 10_000,
        ann_ef: int = 800,
        ann_refine: int = 40,
    ) -> None:
        """``ann_ef``: HNSW candidates per query; ``ann_refine``: that many times ``limit``
        candidates re-ranked by exact distance (the quantised index alone misorders them)."""
        self.uri = uri
        self.ann_ef = ann_ef
        self.ann_refine = ann_refine
        self.embedding_model = embedding_model
        self.dimensions = dimensions
        self.ann_min_rows = ann_min_rows
        self._db: Any = None
        self._table: Any = None
        self._reranker: Any = None
        self._deferred = False  # open() found no table: the first use opens or creates it
        self._opening = asyncio.Lock()
        # this process's writes and maintenance one at a time: a compaction (``optimize``,
        # ``purge_deleted``) removes data files a concurrent delete or merge was still reading
        self._writing = asyncio.Lock()

    def _schema(self, embedding_model: str) -> pa.Schema:
        import pyarrow as pa

        return pa.schema(
            [
                pa.field("chunk_id", pa.string(), nullable=False),
                pa.field("document_id", pa.string(), nullable=False),
                pa.field("base_id", pa.string(), nullable=False),
                pa.field("owner_id", pa.string(), nullable=False),
                pa.field("position", pa.int32(), nullable=False),
                pa.field("title", pa.string()),
                pa.field("heading", pa.string()),
                pa.field("text", pa.string()),
                pa.field("search_text", pa.string()),
                pa.field("embedding_model", pa.string()),
                pa.field("vector", pa.list_(pa.float32(), self.dimensions)),
            ],
            metadata={_MODEL_KEY: embedding_model.encode()},
        )

    async def open(self) -> None:
        """Opens the index and checks its embedding model (EmbeddingMismatch). A local index
        without its table yet has nothing to check: opening it waits for its first use."""
        if "://" not in self.uri and not (Path(self.uri) / f"{TABLE}.lance").exists():
            self._deferred = True
            return
        await self._open()

    async def _open(self) -> None:
        await _imported()
        import lancedb

        self._db = await lancedb.connect_async(self.uri, read_consistency_interval=timedelta(0))
        names = (await self._db.list_tables()).tables
        if TABLE in names:
            table = await self._db.open_table(TABLE)
            stored = ((await table.schema()).metadata or {}).get(_MODEL_KEY, b"").decode()
            if stored != self.embedding_model:
                raise EmbeddingMismatch(
                    f"the knowledge index at {self.uri} holds vectors of {stored!r}, but the "
                    f"configured embedding model is {self.embedding_model!r}; vectors of two "
                    "models cannot be mixed: run `employeevirtual knowledge reindex`"
                )
            self._table = table
            return
        await self._create(self.embedding_model)

    async def _create(self, embedding_model: str) -> None:
        from lancedb.index import FTS

        table = await self._db.create_table(
            TABLE, schema=self._schema(embedding_model), exist_ok=True
        )
        await table.create_index("search_text", config=FTS(with_position=False), replace=True)
        self._table = table

    async def _ready(self) -> Any:
        """The open table (opened or created now when ``open`` deferred it)."""
        if self._table is None and self._deferred:
            async with self._opening:
                if self._table is None and self._deferred:
                    await self._open()
                    self._deferred = False
        if self._table is None:
            raise RuntimeError("the knowledge engine is not open")
        return self._table

    async def upsert(self, rows: Sequence[ChunkRow]) -> None:
        if not rows:
            return
        table = await self._ready()
        import pyarrow as pa

        data = pa.Table.from_pylist(
            [
                {
                    "chunk_id": r.chunk_id,
                    "document_id": str(r.document_id),
                    "base_id": str(r.base_id),
                    "owner_id": str(r.owner_id),
                    "position": r.position,
                    "title": r.title,
                    "heading": r.heading,
                    "text": r.text,
                    "search_text": r.search_text,
                    "embedding_model": self.embedding_model,
                    "vector": list(r.vector),
                }
                for r in rows
            ],
            schema=self._schema(self.embedding_model),
        )
        async with self._writing:
            await (
                table.merge_insert("chunk_id")
                .when_matched_update_all()
                .when_not_matched_insert_all()
                .execute(data)
            )

    async def delete_document(self, document_id: UUID) -> None:
        table = await self._ready()
        async with self._writing:
            await table.delete(_in("document_id", [document_id]))

    async def delete_base(self, base_id: UUID) -> None:
        table = await self._ready()
        async with self._writing:
            await table.delete(_in("base_id", [base_id]))

    async def search(
        self,
        *,
        text: str,
        vector: Sequence[float] | None,
        base_ids: Sequence[UUID],
        limit: int,
        mode: SearchMode = "hybrid",
        exact: bool = False,
    ) -> list[Hit]:
        if not base_ids:
            return []
        where = _in("base_id", base_ids)
        columns = ["chunk_id", "document_id", "base_id", "position", "title", "heading", "text"]
        table = await self._ready()
        query: Any
        if mode == "lexical" or (mode == "hybrid" and vector is None):
            if not text.strip():
                return []
            query = table.query().nearest_to_text(text, columns="search_text")
            score_column = "_score"
        else:
            assert vector is not None, "vector search needs a query vector"
            query = table.query().nearest_to(list(vector)).distance_type("cosine")
            if exact:
                query = query.bypass_vector_index()
            else:
                query = query.ef(max(self.ann_ef, limit)).refine_factor(self.ann_refine)
            if mode == "hybrid" and text.strip():
                query = query.nearest_to_text(text, columns="search_text").rerank(
                    self._rrf(), normalize="rank"
                )
                score_column = "_relevance_score"
            else:
                score_column = "_distance"
        if score_column != "_relevance_score":
            columns.append(score_column)
        rows = await query.where(where).select(columns).limit(limit).to_list()
        hits = []
        for row in rows:
            score = float(row[score_column])
            if score_column == "_distance":
                score = 1.0 - score  # cosine similarity
            hits.append(
                Hit(
                    chunk_id=row["chunk_id"],
                    document_id=UUID(row["document_id"]),
                    base_id=UUID(row["base_id"]),
                    position=int(row["position"]),
                    title=row["title"] or "",
                    heading=row["heading"] or "",
                    text=row["text"] or "",
                    score=score,
                )
            )
        return hits

    async def count(self, *, document_id: UUID | None = None) -> int:
        where = _in("document_id", [document_id]) if document_id is not None else None
        return int(await (await self._ready()).count_rows(where))

    async def chunk_ids(self, document_id: UUID) -> list[str]:
        rows = (
            await (await self._ready())
            .query()
            .where(_in("document_id", [document_id]))
            .select(["chunk_id"])
            .to_list()
        )
        return [r["chunk_id"] for r in rows]

    async def has_ann_index(self) -> bool:
        table = await self._ready()
        return any("vector" in (i.columns or []) for i in await table.list_indices())

    async def optimize(self) -> None:
        if not await self.has_ann_index() and await self.count() >= self.ann_min_rows:
            from lancedb.index import HnswSq

            log.info("building the knowledge ANN index (HNSW, scalar-quantised)")
            async with self._writing:
                await (await self._ready()).create_index(
                    "vector", config=HnswSq(distance_type="cosine"), replace=True
                )
        table = await self._ready()
        async with self._writing:
            await table.optimize()

    async def purge_deleted(self) -> None:
        """A delete in Lance only marks rows; their data files and old versions stay until
        compaction and cleanup. Both now, keeping no old version: an erased person's chunks
        leave the disk. ``delete_unverified`` also removes files of a write in progress (an
        ingestion racing this fails and is retried under its lease)."""
        table = await self._ready()
        with warnings.catch_warnings():  # "removes every version except the latest": wanted
            warnings.simplefilter("ignore", UserWarning)
            async with self._writing:
                await table.optimize(cleanup_older_than=timedelta(0), delete_unverified=True)

    async def reset(self, embedding_model: str) -> None:
        await _imported()
        import lancedb

        if self._db is None:
            self._db = await lancedb.connect_async(self.uri, read_consistency_interval=timedelta(0))
        await self._db.drop_table(TABLE, ignore_missing=True)
        self.embedding_model = embedding_model
        await self._create(embedding_model)
        self._deferred = False

    async def close(self) -> None:
        self._table = None
        self._db = None
        self._deferred = False

    def _rrf(self) -> Any:
        if self._reranker is None:
            from lancedb.rerankers import RRFReranker

            self._reranker = RRFReranker(return_score="relevance")
        return self._reranker
