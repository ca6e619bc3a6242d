"""Background ingestion: queued -> processing -> ready | failed, with progress.

Runs in the server by default (``EV_KNOWLEDGE_INGEST_IN_SERVER``) and as
``employeevirtual knowledge worker`` for deployments with several processes. A worker takes a
document with a compare-and-set lease; a worker that dies leaves its lease to run out and the
next one resumes where the progress says (chunk ids are fixed, writes are upserts: nothing is
ingested twice). A document deleted meanwhile is noticed at the next progress write, and the
worker removes what it wrote.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import uuid
from datetime import UTC, datetime, timedelta
from uuid import UUID

from pydantic_ai import Embedder
from sqlalchemy.ext.asyncio import AsyncEngine

from employeevirtual.knowledge.engine import ChunkRow, RetrievalEngine
from employeevirtual.knowledge.files import FileStore
from employeevirtual.knowledge.parser_pool import ParserPool
from employeevirtual.knowledge.parsing import DocumentRejected
from employeevirtual.stores.records import DocumentRecord
from employeevirtual.stores.sql.documents import DocumentRepository
from employeevirtual.stores.sql.engine import read_connection, write_transaction
from employeevirtual.tasks import Background, raise_if_cancelling

__all__ = ["IngestionWorker"]

log = logging.getLogger(__name__)

BATCH = 64


def _now() -> datetime:
    return datetime.now(UTC)


class IngestionWorker:
    def __init__(
        self,
        *,
        engine: AsyncEngine,
        index: RetrievalEngine,
        embedder: Embedder,
        embedding_model: str,
        files: FileStore,
        parser: ParserPool,
        poll_seconds: float,
        lease_seconds: float,
        optimize_every: int = 20,
        exit_after_batches: int = 0,
        warm_up: bool = True,
    ) -> None:
        self.engine = engine
        self.index = index
        self.embedder = embedder
        self.embedding_model = embedding_model
        self.files = files
        self.parser = parser
        self.poll_seconds = poll_seconds
        self.lease = timedelta(seconds=lease_seconds)
        self.optimize_every = optimize_every
        self.exit_after_batches = exit_after_batches  # fault tests only
        self.warm_up = warm_up  # the parser's child starts with the loop, not at the first file
        self._batches = 0
        self._since_optimize = 0
        self._background = Background("knowledge-ingestion")
        self._wake = asyncio.Event()
        self.token = uuid.uuid4()  # this worker's leases

    def start(self) -> None:
        if not self._background.running:
            if self.warm_up:
                self.parser.warm_up()
            self._background.start(self._loop)

    def wake(self) -> None:
        self._wake.set()

    async def stop(self) -> None:
        await self._background.stop()

    async def _loop(self) -> None:
        while True:
            try:
                done = await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("knowledge ingestion round failed; retrying")
                done = 0
            raise_if_cancelling()
            if not done:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.poll_seconds)

    async def queue_depth(self) -> int:
        """Documents queued or being ingested, by any worker (read from SQL)."""
        async with read_connection(self.engine) as conn:
            return await DocumentRepository(conn).waiting()

    async def run_once(self, *, limit: int = 10) -> int:
        """Take and ingest what is claimable now; how many documents were taken."""
        async with read_connection(self.engine) as conn:
            ids = await DocumentRepository(conn).claimable(now=_now(), limit=limit)
        taken = 0
        for document_id in ids:
            now = _now()
            async with write_transaction(self.engine) as conn:
                claimed = await DocumentRepository(conn).claim(
                    document_id, token=self.token, now=now, until=now + self.lease
                )
            if not claimed:
                continue
            taken += 1
            await self.ingest(document_id)
        if taken:
            self._since_optimize += taken
            if self._since_optimize >= self.optimize_every or not ids[taken:]:
                self._since_optimize = 0
                await self.index.optimize()
        return taken

    def _fault_after_batch(self) -> None:
        """TEST ONLY (EV_FAULT_KNOWLEDGE_EXIT_AFTER_BATCHES): die like a SIGKILL mid-document,
        to prove a restart resumes it without duplicates."""
        self._batches += 1
        if self.exit_after_batches and self._batches >= self.exit_after_batches:
            log.critical("fault injection: exiting after ingestion batch %d", self._batches)
            logging.shutdown()
            os._exit(137)

    async def _progress(self, document_id: UUID, **values: object) -> bool:
        now = _now()
        values.setdefault("locked_until", now + self.lease)
        async with write_transaction(self.engine) as conn:
            return await DocumentRepository(conn).progress(
                document_id, token=self.token, values=dict(values), now=now
            )

    async def _abandon(self, document_id: UUID) -> None:
        """The document was deleted (or taken over) meanwhile: remove what this worker wrote
        unless another worker now holds it."""
        async with read_connection(self.engine) as conn:
            still = await DocumentRepository(conn).get(document_id)
        if still is None:
            await self.index.delete_document(document_id)

    async def ingest(self, document_id: UUID) -> None:
        async with read_connection(self.engine) as conn:
            document = await DocumentRepository(conn).get(document_id)
        if document is None:
            return
        try:
            await self._ingest(document)
        except DocumentRejected as exc:
            await self._fail(document, str(exc))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("ingesting document %s failed", document.id)
            await self._fail(document, f"ingestion failed: {type(exc).__name__}: {exc}"[:2000])

    async def _fail(self, document: DocumentRecord, reason: str) -> None:
        log.info("document %s failed: %s", document.id, reason)
        await self.index.delete_document(document.id)
        await self._progress(
            document.id, status="failed", error=reason[:2000], lease_token=None, locked_until=None
        )

    async def _ingest(self, document: DocumentRecord) -> None:
        try:
            data = await self.files.get(document.storage_key)
        except FileNotFoundError:
            raise DocumentRejected("the original file is missing from storage") from None
        parsed = await self.parser.parse(document.kind, data)
        total = len(parsed.chunks)
        resumed = document.chunks_done if document.embedding_model == self.embedding_model else 0
        if resumed:
            log.info("resuming document %s at chunk %d of %d", document.id, resumed, total)
        else:
            await self.index.delete_document(document.id)  # an earlier model's or attempt's
        if not await self._progress(
            document.id,
            chunks_total=total,
            chunks_done=resumed,
            pages=parsed.pages,
            chars=parsed.chars,
            embedding_model=self.embedding_model,
            error=None,
        ):
            await self._abandon(document.id)
            return
        for start in range(resumed - resumed % BATCH, total, BATCH):
            batch = parsed.chunks[start : start + BATCH]
            texts = ["\n".join(p for p in (document.title, c.heading, c.text) if p) for c in batch]
            result = await self.embedder.embed_documents(texts)
            rows = [
                ChunkRow(
                    chunk_id=f"{document.id}:{c.position}",
                    document_id=document.id,
                    base_id=document.base_id,
                    owner_id=document.user_id,
                    position=c.position,
                    title=document.title,
                    heading=c.heading,
                    text=c.text,
                    vector=vector,
                )
                for c, vector in zip(batch, result.embeddings, strict=True)
            ]
            await self.index.upsert(rows)
            if not await self._progress(document.id, chunks_done=start + len(batch)):
                await self._abandon(document.id)
                return
            self._fault_after_batch()
        if not await self._progress(
            document.id,
            status="ready",
            ready_at=_now(),
            lease_token=None,
            locked_until=None,
        ):
            await self._abandon(document.id)
