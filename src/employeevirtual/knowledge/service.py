"""Knowledge bases and documents: the one place that orders work across SQL, the originals'
storage and the retrieval engine.

- Upload: checks (type 415, size 413, documents per base 409, pages 422, zip bomb 422) ->
  original stored under a generated key -> row ``queued`` (audited) -> the worker is woken.
- Delete: the SQL rows go first (so nothing can be cited: search only cites documents that are
  ``ready`` in SQL), then the chunks and vectors, then the originals, all before returning.
- Search: the caller's readable bases are resolved in SQL and handed to the engine, which
  filters on them inside its query.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from pydantic_ai import Embedder
from sqlalchemy.ext.asyncio import AsyncEngine

from employeevirtual.cursors import parse_time_cursor, time_page
from employeevirtual.errors import Conflict, InvalidInput, NotFound, Unavailable
from employeevirtual.knowledge.engine import RetrievalEngine, SearchMode
from employeevirtual.knowledge.files import FileStore
from employeevirtual.knowledge.ingestion import IngestionWorker
from employeevirtual.knowledge.parsing import Limits
from employeevirtual.knowledge.uploads import Upload
from employeevirtual.stores.records import DocumentRecord, KnowledgeBaseRecord, UserRecord
from employeevirtual.stores.sql.audit import AuditRepository
from employeevirtual.stores.sql.documents import DocumentRepository
from employeevirtual.stores.sql.engine import read_connection, write_transaction
from employeevirtual.stores.sql.knowledge_bases import (
    KnowledgeBaseChanges,
    KnowledgeBaseRepository,
    NewKnowledgeBase,
)

__all__ = ["KnowledgeService", "Page", "Passage"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Passage:
    """One source an answer may cite."""

    document_id: UUID
    base_id: UUID
    title: str
    chunk_id: str
    heading: str
    score: float
    passage: str

    def as_source(self) -> dict[str, Any]:
        return {
            "document_id": str(self.document_id),
            "base_id": str(self.base_id),
            "title": self.title,
            "chunk_id": self.chunk_id,
            "heading": self.heading,
            "score": round(self.score, 6),
            "passage": self.passage,
        }


@dataclass(frozen=True, slots=True)
class Page:
    items: list[Any]
    next_cursor: str | None


def _now() -> datetime:
    return datetime.now(UTC)


class KnowledgeService:
    def __init__(
        self,
        *,
        engine: AsyncEngine,
        index: RetrievalEngine,
        embedder: Embedder,
        files: FileStore,
        worker: IngestionWorker,
        limits: Limits,
        max_bases_per_user: int,
        max_documents_per_base: int,
        max_file_bytes: int,
        search_results: int,
    ) -> None:
        self.engine = engine
        self.index = index
        self.embedder = embedder
        self.files = files
        self.worker = worker
        self.limits = limits
        self.max_bases_per_user = max_bases_per_user
        self.max_documents_per_base = max_documents_per_base
        self.max_file_bytes = max_file_bytes
        self.search_results = search_results
        self.unavailable: str | None = None  # why the engine could not open (model mismatch)

    def _require_engine(self) -> None:
        if self.unavailable is not None:
            raise Unavailable(self.unavailable)

    # -- bases --------------------------------------------------------------------------------

    async def create_base(
        self, user: UserRecord, new: NewKnowledgeBase, *, client_ip: str | None = None
    ) -> KnowledgeBaseRecord:
        now = _now()
        async with write_transaction(self.engine) as conn:
            repo = KnowledgeBaseRepository(conn)
            if await repo.count_owned(user.id) >= self.max_bases_per_user:
                raise Conflict(
                    f"you have {self.max_bases_per_user} knowledge bases, the limit "
                    "(EV_KNOWLEDGE_MAX_BASES_PER_USER); delete one first"
                )
            created = await repo.create(new, user_id=user.id, now=now)
            await AuditRepository(conn).record(
                action="knowledge_base.create",
                actor_id=user.id,
                target_type="knowledge_base",
                target_id=str(created.id),
                details={"name": new.name, "visibility": new.visibility},
                client_ip=client_ip,
                now=now,
            )
        return created

    async def list_bases(self, user: UserRecord, *, limit: int, cursor: str | None) -> Page:
        after = parse_time_cursor(cursor) if cursor else None
        async with read_connection(self.engine) as conn:
            rows = await KnowledgeBaseRepository(conn).list_readable(
                user, limit=limit + 1, after=after
            )
        items, next_cursor = time_page(rows, limit)
        return Page(items, next_cursor)

    async def get_base(self, user: UserRecord, base_id: UUID) -> KnowledgeBaseRecord:
        async with read_connection(self.engine) as conn:
            base = await KnowledgeBaseRepository(conn).get_readable(base_id, user)
        if base is None:
            raise NotFound(f"knowledge base {base_id} not found")
        return base

    @staticmethod
    async def _owned(
        repo: KnowledgeBaseRepository, user: UserRecord, base_id: UUID
    ) -> KnowledgeBaseRecord:
        """A shared base is readable by all but changed only by its owner (or an admin)."""
        base = await repo.get_readable(base_id, user)
        if base is None or (base.user_id != user.id and not user.is_admin):
            raise NotFound(f"knowledge base {base_id} not found")
        return base

    async def update_base(
        self,
        user: UserRecord,
        base_id: UUID,
        changes: KnowledgeBaseChanges,
        *,
        client_ip: str | None = None,
    ) -> KnowledgeBaseRecord:
        for name in ("name", "visibility"):  # a patch may leave them out, not null them
            if name in changes.model_fields_set and getattr(changes, name) is None:
                raise InvalidInput(f"{name} cannot be null")
        now = _now()
        async with write_transaction(self.engine) as conn:
            repo = KnowledgeBaseRepository(conn)
            await self._owned(repo, user, base_id)
            if changes.fields():
                await repo.update(base_id, changes, now=now)
                await AuditRepository(conn).record(
                    action="knowledge_base.update",
                    actor_id=user.id,
                    target_type="knowledge_base",
                    target_id=str(base_id),
                    details={"fields": changes.fields()},
                    client_ip=client_ip,
                    now=now,
                )
            updated = await repo.get_readable(base_id, user)
        assert updated is not None
        return updated

    async def delete_base(self, user: UserRecord, base_id: UUID, *, client_ip: str | None) -> None:
        now = _now()
        async with write_transaction(self.engine) as conn:
            repo = KnowledgeBaseRepository(conn)
            base = await self._owned(repo, user, base_id)
            documents = DocumentRepository(conn)
            stored = await documents.ids_in_base(base_id)
            await documents.delete_base(base_id)
            await repo.delete(base_id)
            await AuditRepository(conn).record(
                action="knowledge_base.delete",
                actor_id=user.id,
                target_type="knowledge_base",
                target_id=str(base_id),
                details={"name": base.name, "documents": len(stored)},
                client_ip=client_ip,
                now=now,
            )
        if self.unavailable is None:
            await self.index.delete_base(base_id)
        for _, key in stored:
            await self.files.delete(key)

    # -- documents ----------------------------------------------------------------------------

    async def upload(
        self,
        user: UserRecord,
        base_id: UUID,
        *,
        filename: str,
        data: bytes,
        title: str | None,
        client_ip: str | None,
    ) -> DocumentRecord:
        self._require_engine()
        upload = Upload.accept(filename, data, title=title, max_bytes=self.max_file_bytes)
        async with read_connection(self.engine) as conn:
            await self._owned(KnowledgeBaseRepository(conn), user, base_id)
        pages = await upload.pages(self.limits)
        key = self.files.new_key()
        await self.files.put(key, data)
        now = _now()
        document_id = uuid.uuid4()
        try:
            async with write_transaction(self.engine) as conn:
                repo = KnowledgeBaseRepository(conn)
                await self._owned(repo, user, base_id)
                documents = DocumentRepository(conn)
                if await documents.count_in_base(base_id) >= self.max_documents_per_base:
                    raise Conflict(
                        f"the knowledge base holds {self.max_documents_per_base} documents, the "
                        "limit (EV_KNOWLEDGE_MAX_DOCUMENTS_PER_BASE); delete one first"
                    )
                await documents.create(
                    {
                        "id": document_id,
                        "base_id": base_id,
                        "user_id": user.id,
                        **upload.columns(),
                        "storage_key": key,
                        "status": "queued",
                        "pages": pages,
                        "chunks_total": 0,
                        "chunks_done": 0,
                        "attempts": 0,
                        "created_at": now,
                        "updated_at": now,
                    }
                )
                await AuditRepository(conn).record(
                    action="document.upload",
                    actor_id=user.id,
                    target_type="document",
                    target_id=str(document_id),
                    details={"base_id": str(base_id), "bytes": len(data), "kind": upload.kind},
                    client_ip=client_ip,
                    now=now,
                )
                document = await documents.get(document_id)
        except BaseException:
            await self.files.delete(key)
            raise
        assert document is not None
        self.worker.wake()
        return document

    async def list_documents(
        self, user: UserRecord, base_id: UUID, *, limit: int, cursor: str | None
    ) -> Page:
        after = parse_time_cursor(cursor) if cursor else None
        async with read_connection(self.engine) as conn:
            if await KnowledgeBaseRepository(conn).get_readable(base_id, user) is None:
                raise NotFound(f"knowledge base {base_id} not found")
            rows = await DocumentRepository(conn).list_page(base_id, limit=limit + 1, after=after)
        items, next_cursor = time_page(rows, limit)
        return Page(items, next_cursor)

    async def get_document(
        self, user: UserRecord, base_id: UUID, document_id: UUID
    ) -> DocumentRecord:
        async with read_connection(self.engine) as conn:
            if await KnowledgeBaseRepository(conn).get_readable(base_id, user) is None:
                raise NotFound(f"knowledge base {base_id} not found")
            document = await DocumentRepository(conn).get(document_id, base_id=base_id)
        if document is None:
            raise NotFound(f"document {document_id} not found")
        return document

    async def original(
        self, user: UserRecord, base_id: UUID, document_id: UUID
    ) -> tuple[DocumentRecord, bytes]:
        document = await self.get_document(user, base_id, document_id)
        try:
            return document, await self.files.get(document.storage_key)
        except FileNotFoundError:
            raise NotFound(f"the original of document {document_id} is gone") from None

    async def delete_document(
        self, user: UserRecord, base_id: UUID, document_id: UUID, *, client_ip: str | None
    ) -> None:
        now = _now()
        async with write_transaction(self.engine) as conn:
            await self._owned(KnowledgeBaseRepository(conn), user, base_id)
            documents = DocumentRepository(conn)
            document = await documents.get(document_id, base_id=base_id)
            if document is None:
                raise NotFound(f"document {document_id} not found")
            await documents.delete(document_id)
            await AuditRepository(conn).record(
                action="document.delete",
                actor_id=user.id,
                target_type="document",
                target_id=str(document_id),
                details={"base_id": str(base_id), "title": document.title},
                client_ip=client_ip,
                now=now,
            )
        if self.unavailable is None:
            await self.index.delete_document(document_id)
        await self.files.delete(document.storage_key)

    # -- retrieval ----------------------------------------------------------------------------

    async def readable_bases(self, user_id: UUID, base_ids: Sequence[UUID]) -> list[UUID]:
        async with read_connection(self.engine) as conn:
            return await KnowledgeBaseRepository(conn).readable_ids(user_id, base_ids)

    async def search(
        self,
        user_id: UUID,
        base_ids: Sequence[UUID],
        query: str,
        *,
        limit: int | None = None,
        mode: SearchMode = "hybrid",
    ) -> list[Passage]:
        """The best passages of the bases the user may read, among ``base_ids``. The engine
        filters on those bases inside its query; only documents still ``ready`` are cited."""
        self._require_engine()
        readable = await self.readable_bases(user_id, base_ids)
        if not readable or not query.strip():
            return []
        vector = None
        if mode != "lexical":
            vector = (await self.embedder.embed_query(query)).embeddings[0]
        hits = await self.index.search(
            text=query,
            vector=vector,
            base_ids=readable,
            limit=limit or self.search_results,
            mode=mode,
        )
        async with read_connection(self.engine) as conn:
            titles = await DocumentRepository(conn).ready_titles(
                list({h.document_id for h in hits})
            )
        return [
            Passage(
                document_id=h.document_id,
                base_id=h.base_id,
                title=titles[h.document_id],
                chunk_id=h.chunk_id,
                heading=h.heading,
                score=h.score,
                passage=h.text,
            )
            for h in hits
            if h.document_id in titles
        ]

    async def reindex(self) -> int:
        """Drop every vector and queue every document again for the configured embedding
        model (the one this service embeds with)."""
        await self.index.reset(self.worker.embedding_model)
        self.unavailable = None
        async with write_transaction(self.engine) as conn:
            count = await DocumentRepository(conn).requeue_all(now=_now())
        self.worker.wake()
        return count
