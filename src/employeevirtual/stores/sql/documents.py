"""Knowledge documents: metadata, status and the ingestion work list (leases). Never commits."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import and_, delete, func, insert, or_, select, update
from sqlalchemy.engine import Row

from employeevirtual.stores.records import DocumentRecord
from employeevirtual.stores.sql.engine import Connection
from employeevirtual.stores.sql.keyset import after_desc
from employeevirtual.stores.sql.tables import knowledge_documents

__all__ = ["DocumentRepository"]

kd = knowledge_documents.c
_FIELDS = [c.name for c in knowledge_documents.c if c.name not in ("lease_token", "locked_until")]


def _document(row: Row[Any]) -> DocumentRecord:
    m = row._mapping
    return DocumentRecord(**{name: m[name] for name in _FIELDS})


def _rowcount(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


class DocumentRepository:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    async def get(self, document_id: UUID, *, base_id: UUID | None = None) -> DocumentRecord | None:
        query = select(knowledge_documents).where(kd.id == document_id)
        if base_id is not None:
            query = query.where(kd.base_id == base_id)
        row = (await self.conn.execute(query)).first()
        return _document(row) if row else None

    async def list_page(
        self, base_id: UUID, *, limit: int, after: tuple[datetime, UUID] | None
    ) -> list[DocumentRecord]:
        query = (
            select(knowledge_documents)
            .where(kd.base_id == base_id)
            .order_by(kd.created_at.desc(), kd.id.desc())
            .limit(limit)
        )
        if after is not None:
            query = query.where(after_desc(kd.created_at, kd.id, after))
        return [_document(r) for r in await self.conn.execute(query)]

    async def ready_titles(self, document_ids: list[UUID]) -> dict[UUID, str]:
        """Title of each document that still exists and is ready (what may be cited)."""
        if not document_ids:
            return {}
        query = select(kd.id, kd.title).where(kd.id.in_(document_ids), kd.status == "ready")
        return {r[0]: r[1] for r in await self.conn.execute(query)}

    async def count_in_base(self, base_id: UUID) -> int:
        query = select(func.count()).select_from(knowledge_documents).where(kd.base_id == base_id)
        return int((await self.conn.execute(query)).scalar_one())

    async def ids_in_base(self, base_id: UUID) -> list[tuple[UUID, str]]:
        query = select(kd.id, kd.storage_key).where(kd.base_id == base_id)
        return [(r[0], r[1]) for r in await self.conn.execute(query)]

    async def create(self, values: dict[str, Any]) -> None:
        await self.conn.execute(insert(knowledge_documents).values(values))

    async def delete(self, document_id: UUID) -> None:
        await self.conn.execute(delete(knowledge_documents).where(kd.id == document_id))

    async def delete_base(self, base_id: UUID) -> None:
        await self.conn.execute(delete(knowledge_documents).where(kd.base_id == base_id))

    # -- the ingestion work list --------------------------------------------------------------

    async def waiting(self) -> int:
        """Documents queued or being ingested (the ingestion queue's depth)."""
        query = (
            select(func.count())
            .select_from(knowledge_documents)
            .where(kd.status.in_(("queued", "processing")))
        )
        return int((await self.conn.execute(query)).scalar_one())

    async def claimable(self, *, now: datetime, limit: int) -> list[UUID]:
        """Queued documents, and processing ones whose worker's lease ran out (a crash)."""
        query = (
            select(kd.id)
            .where(
                or_(
                    kd.status == "queued",
                    and_(kd.status == "processing", kd.locked_until < now),
                )
            )
            .order_by(kd.created_at)
            .limit(limit)
        )
        return [r[0] for r in await self.conn.execute(query)]

    async def claim(
        self, document_id: UUID, *, token: UUID, now: datetime, until: datetime
    ) -> bool:
        """Compare-and-set: take the document unless another worker holds a live lease."""
        result = await self.conn.execute(
            update(knowledge_documents)
            .where(
                kd.id == document_id,
                or_(
                    kd.status == "queued",
                    and_(kd.status == "processing", kd.locked_until < now),
                ),
            )
            .values(
                status="processing",
                lease_token=token,
                locked_until=until,
                attempts=kd.attempts + 1,
                updated_at=now,
            )
        )
        return _rowcount(result) == 1

    async def progress(
        self, document_id: UUID, *, token: UUID, values: dict[str, Any], now: datetime
    ) -> bool:
        """Update under the lease; False when the document was deleted or taken over."""
        result = await self.conn.execute(
            update(knowledge_documents)
            .where(kd.id == document_id, kd.lease_token == token, kd.status == "processing")
            .values(**values, updated_at=now)
        )
        return _rowcount(result) == 1

    async def requeue_all(self, *, now: datetime) -> int:
        """Every document back to the queue (re-indexing with another embedding model)."""
        result = await self.conn.execute(
            update(knowledge_documents)
            .where(kd.status.in_(["ready", "processing", "queued"]))
            .values(
                status="queued",
                chunks_done=0,
                lease_token=None,
                locked_until=None,
                updated_at=now,
            )
        )
        return _rowcount(result)
