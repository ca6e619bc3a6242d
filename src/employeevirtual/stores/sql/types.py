"""Column types that mean the same on SQLite, PostgreSQL and SQL Server."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Dialect, TypeDecorator
from sqlalchemy.dialects import postgresql

__all__ = ["JSONDocument", "UTCDateTime"]


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC on the way in and out (DATETIMEOFFSET, TIMESTAMPTZ, text on SQLite)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: use an aware UTC datetime")
        value = value.astimezone(UTC)
        # SQLite keeps text; drop the offset so ordering compares like with like
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# JSON: NVARCHAR(MAX) on SQL Server, JSONB on PostgreSQL, text on SQLite.
JSONDocument: Any = JSON().with_variant(postgresql.JSONB(), "postgresql")
