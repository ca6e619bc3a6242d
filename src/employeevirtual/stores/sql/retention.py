"""What retention removes: conversations past their keeping time."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from sqlalchemy import and_, func, or_, select

from employeevirtual.stores.sql.engine import Connection
from employeevirtual.stores.sql.tables import conversations

__all__ = ["RetentionReader"]


class RetentionReader:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    async def expired_conversations(
        self,
        *,
        archived_before: datetime | None,
        inactive_before: datetime | None,
        limit: int,
    ) -> list[UUID]:
        """Conversations past their retention: archived and idle since ``archived_before``, or
        idle since ``inactive_before`` whatever their status (last activity, else creation)."""
        c = conversations.c
        idle = func.coalesce(c.last_message_at, c.created_at)
        due = []
        if archived_before is not None:
            due.append(and_(c.status == "archived", idle < archived_before))
        if inactive_before is not None:
            due.append(idle < inactive_before)
        if not due:
            return []
        query = select(c.id).where(or_(*due)).limit(limit)
        return [row[0] for row in await self.conn.execute(query)]
