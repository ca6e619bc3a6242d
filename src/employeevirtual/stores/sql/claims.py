"""``empl.claims``: one-time claims, each a row whose primary key makes taking it atomic on every
backend (two concurrent transactions cannot both insert it). Like every repository, it never
commits."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from sqlalchemy import insert, update
from sqlalchemy.exc import IntegrityError

from employeevirtual.stores.sql.engine import WriteConnection
from employeevirtual.stores.sql.tables import claims

__all__ = ["ClaimRepository"]


class ClaimRepository:
    def __init__(self, conn: WriteConnection) -> None:
        self.conn = conn

    async def claim(self, name: str, *, now: datetime) -> bool:
        """Take ``name``; False when it is taken (committed, or by a transaction that then
        commits: PostgreSQL and SQL Server make the second insert wait for the first). In a
        savepoint, so a refusal leaves the caller's transaction usable."""
        try:
            async with self.conn.begin_nested():
                await self.conn.execute(insert(claims).values(name=name, created_at=now))
        except IntegrityError:
            return False
        return True

    async def record_holder(self, name: str, holder: UUID) -> None:
        await self.conn.execute(
            update(claims).where(claims.c.name == name).values(claimed_by=holder)
        )
