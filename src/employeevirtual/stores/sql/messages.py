"""``empl.messages``: each conversation's messages, numbered 1..message_count without gaps.
Like every repository, it never commits."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from sqlalchemy import Select, insert, select

from employeevirtual.stores.records import MessageRecord
from employeevirtual.stores.sql.direct import DirectStatement
from employeevirtual.stores.sql.engine import Connection, WriteConnection
from employeevirtual.stores.sql.rows import message_from_row
from employeevirtual.stores.sql.tables import messages

_INSERT = DirectStatement(insert(messages))  # every column, named by its key

__all__ = ["MessageReader", "MessageRepository", "message_parameters", "messages_after"]


def messages_after(conversation_id: UUID, *, after_seq: int, limit: int) -> Select[Any]:
    """A conversation's messages after ``after_seq``, in order (one page)."""
    m = messages.c
    return (
        select(messages)
        .where(m.conversation_id == conversation_id, m.seq > after_seq)
        .order_by(m.seq)
        .limit(limit)
    )


class MessageReader:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    async def page(
        self, conversation_id: UUID, *, before_seq: int | None, limit: int
    ) -> list[MessageRecord]:
        """Up to ``limit`` messages before ``before_seq``, oldest first."""
        m = messages.c
        query = select(messages).where(m.conversation_id == conversation_id)
        if before_seq is not None:
            query = query.where(m.seq < before_seq)
        query = query.order_by(m.seq.desc()).limit(limit)
        rows = [message_from_row(r) for r in await self.conn.execute(query)]
        rows.reverse()
        return rows

    async def recent_dialogue(self, conversation_id: UUID, *, limit: int) -> list[MessageRecord]:
        """The newest user/agent messages, oldest first: the agent's context."""
        if limit <= 0:
            return []
        m = messages.c
        query = (
            select(messages)
            .where(m.conversation_id == conversation_id, m.message_type.in_(("user", "agent")))
            .order_by(m.seq.desc())
            .limit(limit)
        )
        rows = [message_from_row(r) for r in await self.conn.execute(query)]
        rows.reverse()
        return rows

    async def after(
        self, conversation_id: UUID, *, after_seq: int, limit: int
    ) -> list[MessageRecord]:
        query = messages_after(conversation_id, after_seq=after_seq, limit=limit)
        return [message_from_row(r) for r in await self.conn.execute(query)]

    async def ids(self, conversation_id: UUID) -> dict[UUID, int]:
        """Every message id of a conversation and its seq."""
        m = messages.c
        query = select(m.id, m.seq).where(m.conversation_id == conversation_id)
        return {row[0]: row[1] for row in await self.conn.execute(query)}

    async def by_id(self, ids: Sequence[UUID]) -> list[MessageRecord]:
        if not ids:
            return []
        query = select(messages).where(messages.c.id.in_(ids)).order_by(messages.c.seq)
        return [message_from_row(r) for r in await self.conn.execute(query)]


class MessageRepository(MessageReader):
    def __init__(self, conn: WriteConnection) -> None:
        super().__init__(conn)

    async def insert_many(self, records: Sequence[MessageRecord]) -> None:
        await _INSERT.execute_many(self.conn, [message_parameters(r) for r in records])


def message_parameters(record: MessageRecord) -> dict[str, Any]:
    """``record`` as the values of ``empl.messages``' columns, by key."""
    return {
        "id": record.id,
        "conversation_id": record.conversation_id,
        "seq": record.seq,
        "user_id": record.user_id,
        "agent_id": record.agent_id,
        "content": record.content,
        "message_type": record.message_type,
        "message_metadata": record.metadata,
        "created_at": record.created_at,
        "is_edited": record.is_edited,
        "edited_at": record.edited_at,
    }
