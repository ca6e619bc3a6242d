"""Queries over ``empl.server_instances``; like every repository, it never commits."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import CursorResult

from employeevirtual.stores.sql.engine import Connection, WriteConnection
from employeevirtual.stores.sql.tables import server_instances

__all__ = ["InstanceReader", "InstanceRecord", "InstanceRepository"]


@dataclass(frozen=True, slots=True)
class InstanceRecord:
    id: UUID
    hostname: str
    pid: int
    boot_id: str
    heartbeat_at: datetime
    stopped_at: datetime | None


class InstanceReader:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    async def get(self, instance_id: UUID) -> InstanceRecord | None:
        s = server_instances.c
        row = (
            await self.conn.execute(
                select(s.id, s.hostname, s.pid, s.boot, s.heartbeat_at, s.stopped_at).where(
                    s.id == instance_id
                )
            )
        ).first()
        return InstanceRecord(*row) if row else None


class InstanceRepository(InstanceReader):
    def __init__(self, conn: WriteConnection) -> None:
        super().__init__(conn)

    async def register(
        self, *, instance_id: UUID, hostname: str, pid: int, boot_id: str, now: datetime
    ) -> None:
        await self.conn.execute(
            insert(server_instances).values(
                id=instance_id,
                hostname=hostname,
                pid=pid,
                boot=boot_id,
                started_at=now,
                heartbeat_at=now,
            )
        )

    async def heartbeat(self, instance_id: UUID, *, now: datetime) -> bool:
        """False when the row is gone (purged while this server was stalled for a day)."""
        result = await self.conn.execute(
            update(server_instances)
            .where(server_instances.c.id == instance_id)
            .values(heartbeat_at=now, stopped_at=None)
        )
        return isinstance(result, CursorResult) and result.rowcount > 0

    async def stopped(self, instance_id: UUID, *, now: datetime) -> None:
        await self.conn.execute(
            update(server_instances)
            .where(server_instances.c.id == instance_id)
            .values(stopped_at=now)
        )

    async def purge(self, *, heartbeat_before: datetime) -> int:
        result = await self.conn.execute(
            delete(server_instances).where(server_instances.c.heartbeat_at < heartbeat_before)
        )
        return int(result.rowcount) if isinstance(result, CursorResult) else 0
