"""``empl.audit_log``: who did what to what, in the same transaction as the action; read back
as the audit trail, and purged by retention."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import delete, insert, select

from employeevirtual.stores.sql.engine import Connection, WriteConnection
from employeevirtual.stores.sql.keyset import after_desc
from employeevirtual.stores.sql.rows import rowcount
from employeevirtual.stores.sql.tables import audit_log

__all__ = ["AuditEntry", "AuditFilter", "AuditRepository", "AuditTrailReader"]


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: UUID
    actor_id: UUID | None
    action: str
    target_type: str | None
    target_id: str | None
    details: dict[str, Any] | None
    client_ip: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class AuditFilter:
    actor_id: UUID | None = None
    action: str | None = None
    target_type: str | None = None
    target_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None


class AuditTrailReader:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    async def page(
        self, f: AuditFilter, *, limit: int, after: tuple[datetime, UUID] | None
    ) -> list[AuditEntry]:
        """Newest first, keyset-paged on (created_at, id)."""
        a = audit_log.c
        query = select(audit_log)
        if f.actor_id is not None:
            query = query.where(a.actor_id == f.actor_id)
        if f.action is not None:
            query = query.where(a.action == f.action)
        if f.target_type is not None:
            query = query.where(a.target_type == f.target_type)
        if f.target_id is not None:
            query = query.where(a.target_id == f.target_id)
        if f.since is not None:
            query = query.where(a.created_at >= f.since)
        if f.until is not None:
            query = query.where(a.created_at < f.until)
        if after is not None:
            query = query.where(after_desc(a.created_at, a.id, after))
        query = query.order_by(a.created_at.desc(), a.id.desc()).limit(limit)
        return [
            AuditEntry(**{k: r._mapping[k] for k in AuditEntry.__slots__})
            for r in await self.conn.execute(query)
        ]


class AuditRepository(AuditTrailReader):
    def __init__(self, conn: WriteConnection) -> None:
        self.conn = conn

    async def record(
        self,
        *,
        action: str,
        actor_id: UUID | None,
        now: datetime,
        target_type: str | None = None,
        target_id: str | None = None,
        details: dict[str, Any] | None = None,
        client_ip: str | None = None,
    ) -> None:
        await self.conn.execute(
            insert(audit_log).values(
                id=uuid.uuid4(),
                actor_id=actor_id,
                action=action,
                target_type=target_type,
                target_id=target_id,
                details=details,
                client_ip=client_ip,
                created_at=now,
            )
        )

    async def purge_before(self, cutoff: datetime, *, batch: int) -> int:
        """Delete up to ``batch`` rows older than ``cutoff`` (one short statement)."""
        a = audit_log.c
        ids = select(a.id).where(a.created_at < cutoff).limit(batch).scalar_subquery()
        result = await self.conn.execute(delete(audit_log).where(a.id.in_(ids)))
        return rowcount(result)
