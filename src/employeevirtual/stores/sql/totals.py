"""Whole-store totals for the cheap loss check; like every repository, it never commits."""

from __future__ import annotations

from sqlalchemy import case, func, select

from employeevirtual.stores.sql.engine import Connection
from employeevirtual.stores.sql.tables import conversations

__all__ = ["synced_totals"]


async def synced_totals(conn: Connection) -> tuple[int, int]:
    """(messages, conversations) SQL records as already in MongoDB: the sum of ``synced_seq``,
    and the conversations with ``synced_seq`` > 0. MongoDB holding fewer means it lost data."""
    c = conversations.c
    row = (
        await conn.execute(
            select(
                func.coalesce(func.sum(c.synced_seq), 0),
                func.coalesce(func.sum(case((c.synced_seq > 0, 1), else_=0)), 0),
            )
        )
    ).one()
    return int(row[0]), int(row[1])
