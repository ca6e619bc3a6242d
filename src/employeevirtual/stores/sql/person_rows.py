"""Everything a person owns in SQL, read out for their export (keyset-paged, as plain column
dicts), without secrets or derived index columns."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import or_, select

from employeevirtual.stores.sql.engine import Connection
from employeevirtual.stores.sql.keyset import after_asc
from employeevirtual.stores.sql.messages import messages_after
from employeevirtual.stores.sql.tables import (
    agents,
    api_keys,
    audit_log,
    conversations,
    knowledge_bases,
    knowledge_documents,
    message_feedback,
    users,
)

__all__ = ["PersonRowsReader"]

# never exported: secrets and derived index columns
_HIDDEN = {"password_hash", "digest"}


def _plain(row: Any) -> dict[str, Any]:
    return {k: v for k, v in row._mapping.items() if k not in _HIDDEN}


class PersonRowsReader:
    """Keyset-paged reads of everything a person owns in SQL, as plain column dicts."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    async def profile(self, user_id: UUID) -> dict[str, Any] | None:
        row = (await self.conn.execute(select(users).where(users.c.id == user_id))).first()
        return _plain(row) if row else None

    async def owned(
        self, table_name: str, user_id: UUID, *, after: UUID | None, limit: int
    ) -> list[dict[str, Any]]:
        """Rows of ``agents``, ``conversations`` or ``api_keys`` owned by the person, by id."""
        table = {
            "agents": agents,
            "conversations": conversations,
            "api_keys": api_keys,
            "knowledge_bases": knowledge_bases,
            "knowledge_documents": knowledge_documents,
        }[table_name]
        query = select(table).where(table.c.user_id == user_id)
        if after is not None:
            query = query.where(table.c.id > after)
        query = query.order_by(table.c.id).limit(limit)
        return [_plain(r) for r in await self.conn.execute(query)]

    async def feedback(
        self, user_id: UUID, *, after: UUID | None, limit: int
    ) -> list[dict[str, Any]]:
        f = message_feedback.c
        query = select(message_feedback).where(f.user_id == user_id)
        if after is not None:
            query = query.where(f.message_id > after)
        query = query.order_by(f.message_id).limit(limit)
        return [_plain(r) for r in await self.conn.execute(query)]

    async def messages(
        self, conversation_id: UUID, *, after_seq: int, limit: int
    ) -> list[dict[str, Any]]:
        query = messages_after(conversation_id, after_seq=after_seq, limit=limit)
        return [_plain(r) for r in await self.conn.execute(query)]

    async def audit_about(
        self, user_id: UUID, *, after: tuple[datetime, UUID] | None, limit: int
    ) -> list[dict[str, Any]]:
        a = audit_log.c
        query = select(audit_log).where(or_(a.actor_id == user_id, a.target_id == str(user_id)))
        if after is not None:
            query = query.where(after_asc(a.created_at, a.id, after))
        query = query.order_by(a.created_at, a.id).limit(limit)
        return [_plain(r) for r in await self.conn.execute(query)]
