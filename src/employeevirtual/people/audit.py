"""Reading the audit trail (admins): newest first, filtered, keyset-paged."""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncEngine

from employeevirtual.errors import InvalidInput
from employeevirtual.stores.sql.audit import AuditEntry, AuditFilter, AuditTrailReader
from employeevirtual.stores.sql.engine import read_connection

__all__ = ["AuditTrail"]


def _encode(entry: AuditEntry) -> str:
    return base64.urlsafe_b64encode(f"{entry.created_at.isoformat()}|{entry.id}".encode()).decode()


def _decode(cursor: str) -> tuple[datetime, UUID]:
    try:
        at_text, last = base64.urlsafe_b64decode(cursor.encode()).decode().split("|")
        at, last_id = datetime.fromisoformat(at_text), UUID(last)
    except (binascii.Error, ValueError, UnicodeError):
        raise InvalidInput(_BAD_CURSOR) from None
    if at.utcoffset() is None:  # a naive time cannot be compared with the stored aware ones
        raise InvalidInput(_BAD_CURSOR)
    return at, last_id


_BAD_CURSOR = "cursor is not valid; pass next_cursor from a previous page"


class AuditTrail:
    def __init__(self, *, engine: AsyncEngine) -> None:
        self.engine = engine

    async def page(
        self, filters: AuditFilter, *, limit: int, cursor: str | None
    ) -> tuple[list[AuditEntry], str | None]:
        after = _decode(cursor) if cursor else None
        async with read_connection(self.engine) as conn:
            rows = await AuditTrailReader(conn).page(filters, limit=limit + 1, after=after)
        more = len(rows) > limit
        rows = rows[:limit]
        return rows, _encode(rows[-1]) if more and rows else None
