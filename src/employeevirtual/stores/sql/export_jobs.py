"""``empl.export_jobs``: a person's data exports, pending -> running -> ready | failed ->
expired. Never commits: the service decides the transactions."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from sqlalchemy import insert, select, update

from employeevirtual.stores.sql.engine import Connection, WriteConnection
from employeevirtual.stores.sql.rows import rowcount
from employeevirtual.stores.sql.tables import export_jobs

__all__ = ["ExportJob", "ExportReader", "ExportRepository", "ExportStatus"]

ExportStatus = Literal["pending", "running", "ready", "failed", "expired"]


@dataclass(frozen=True, slots=True)
class ExportJob:
    id: UUID
    user_id: UUID
    requested_by: UUID | None
    status: ExportStatus
    created_at: datetime
    completed_at: datetime | None
    expires_at: datetime | None
    size_bytes: int | None
    error: str | None


def _export(row: Any) -> ExportJob:
    m = row._mapping
    return ExportJob(**{k: m[k] for k in ExportJob.__slots__})


class ExportReader:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    async def get(self, job_id: UUID) -> ExportJob | None:
        query = select(export_jobs).where(export_jobs.c.id == job_id)
        row = (await self.conn.execute(query)).first()
        return _export(row) if row else None

    async def latest_for(self, user_id: UUID) -> ExportJob | None:
        e = export_jobs.c
        query = select(export_jobs).where(e.user_id == user_id).order_by(e.created_at.desc())
        row = (await self.conn.execute(query.limit(1))).first()
        return _export(row) if row else None

    async def unfinished(self, *, limit: int) -> list[ExportJob]:
        e = export_jobs.c
        query = select(export_jobs).where(e.status.in_(("pending", "running")))
        rows = await self.conn.execute(query.order_by(e.created_at).limit(limit))
        return [_export(r) for r in rows]

    async def expired(self, *, now: datetime, limit: int) -> list[ExportJob]:
        e = export_jobs.c
        query = select(export_jobs).where(e.status == "ready", e.expires_at < now).limit(limit)
        return [_export(r) for r in await self.conn.execute(query)]

    async def for_user(self, user_id: UUID) -> list[ExportJob]:
        query = select(export_jobs).where(export_jobs.c.user_id == user_id)
        return [_export(r) for r in await self.conn.execute(query)]


class ExportRepository(ExportReader):
    def __init__(self, conn: WriteConnection) -> None:
        self.conn = conn

    async def create(self, *, user_id: UUID, requested_by: UUID, now: datetime) -> ExportJob:
        statement = (
            insert(export_jobs)
            .values(
                id=uuid.uuid4(),
                user_id=user_id,
                requested_by=requested_by,
                status="pending",
                created_at=now,
            )
            .returning(export_jobs)
        )
        return _export((await self.conn.execute(statement)).one())

    async def claim(self, job_id: UUID, *, take_stale: bool = False) -> bool:
        """Pending -> running (compare-and-set); ``take_stale`` also takes a running one whose
        builder died."""
        e = export_jobs.c
        states = ("pending", "running") if take_stale else ("pending",)
        result = await self.conn.execute(
            update(export_jobs).where(e.id == job_id, e.status.in_(states)).values(status="running")
        )
        return rowcount(result) > 0

    async def finish(
        self,
        job_id: UUID,
        *,
        status: ExportStatus,
        now: datetime,
        expires_at: datetime | None = None,
        size_bytes: int | None = None,
        error: str | None = None,
    ) -> None:
        await self.conn.execute(
            update(export_jobs)
            .where(export_jobs.c.id == job_id)
            .values(
                status=status,
                completed_at=now,
                expires_at=expires_at,
                size_bytes=size_bytes,
                error=error,
            )
        )
