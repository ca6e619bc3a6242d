"""Reading the audit trail (admins): newest first, filtered, keyset-paged."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from employeevirtual.cursors import parse_time_cursor, time_page
from employeevirtual.stores.sql.audit import AuditEntry, AuditFilter, AuditTrailReader
from employeevirtual.stores.sql.engine import read_connection

__all__ = ["AuditTrail"]


class AuditTrail:
    def __init__(self, *, engine: AsyncEngine) -> None:
        self.engine = engine

    async def page(
        self, filters: AuditFilter, *, limit: int, cursor: str | None
    ) -> tuple[list[AuditEntry], str | None]:
        after = parse_time_cursor(cursor) if cursor else None
        async with read_connection(self.engine) as conn:
            rows = await AuditTrailReader(conn).page(filters, limit=limit + 1, after=after)
        return time_page(rows, limit)
