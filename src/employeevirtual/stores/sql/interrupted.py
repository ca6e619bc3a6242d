"""Turns left half done: conversations whose newest message is a user message that nobody
answered (a streamed turn or an edit commits the user's message before the agent runs; a
process that dies before the answer's commit leaves it so). Read and closed by
``chat.interrupted``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, select, update

from employeevirtual.stores.records import ConversationRecord
from employeevirtual.stores.sql.engine import Connection, WriteConnection
from employeevirtual.stores.sql.rows import conversation_from_row
from employeevirtual.stores.sql.tables import agents, conversations, messages

__all__ = ["Unanswered", "UnansweredReader", "close_unanswered"]


@dataclass(frozen=True, slots=True)
class Unanswered:
    conversation: ConversationRecord
    model: str  # the agent's model (the error record names it, like a failed run's)


class UnansweredReader:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    async def find(self, *, since: datetime, before: datetime, limit: int) -> list[Unanswered]:
        """Conversations last written in ``[since, before)`` whose newest message (seq ==
        ``message_count``) is a user's: the last-message index bounds the scan."""
        c, m, a = conversations.c, messages.c, agents.c
        query = (
            select(conversations, a.model)
            .join(messages, and_(m.conversation_id == c.id, m.seq == c.message_count))
            .join(agents, a.id == c.agent_id)
            .where(
                c.last_message_at >= since,
                c.last_message_at < before,
                m.message_type == "user",
            )
            .order_by(c.last_message_at)
            .limit(limit)
        )
        rows = (await self.conn.execute(query)).all()
        return [Unanswered(conversation_from_row(r), r.model) for r in rows]


async def close_unanswered(
    conn: WriteConnection, conversation: ConversationRecord, *, now: datetime, error: str
) -> ConversationRecord | None:
    """Take the next seq for the failure record, only if nothing was committed since the scan
    (``message_count`` unchanged); the row after the update, or None."""
    c = conversations.c
    row = (
        await conn.execute(
            update(conversations)
            .where(c.id == conversation.id, c.message_count == conversation.message_count)
            .values(
                message_count=c.message_count + 1,
                last_message_at=now,
                updated_at=now,
                last_error=error[:2000],
            )
            .returning(conversations)
        )
    ).first()
    return conversation_from_row(row) if row else None
