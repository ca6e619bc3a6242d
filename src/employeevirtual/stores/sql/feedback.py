"""Feedback on agent messages. Never commits: the caller owns the transaction."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import and_, insert, select, update

from employeevirtual.stores.records import FeedbackRecord, Rating
from employeevirtual.stores.sql.engine import Connection, WriteConnection
from employeevirtual.stores.sql.tables import message_feedback, messages

__all__ = ["FeedbackReader", "FeedbackRepository"]


def _record(m: Any) -> FeedbackRecord:
    return FeedbackRecord(
        message_id=m["message_id"],
        conversation_id=m["conversation_id"],
        user_id=m["user_id"],
        rating=m["rating"],
        comment=m["comment"],
        created_at=m["created_at"],
        updated_at=m["updated_at"],
    )


class FeedbackReader:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    async def message(self, message_id: UUID, conversation_id: UUID) -> tuple[str, datetime] | None:
        """(message_type, created_at) of a message of this conversation."""
        m = messages.c
        query = select(m.message_type, m.created_at).where(
            m.id == message_id, m.conversation_id == conversation_id
        )
        row = (await self.conn.execute(query)).first()
        return (row[0], row[1]) if row else None

    async def get(self, message_id: UUID) -> FeedbackRecord | None:
        query = select(message_feedback).where(message_feedback.c.message_id == message_id)
        row = (await self.conn.execute(query)).first()
        return _record(row._mapping) if row else None

    async def for_messages(self, message_ids: Sequence[UUID]) -> dict[UUID, FeedbackRecord]:
        if not message_ids:
            return {}
        query = select(message_feedback).where(message_feedback.c.message_id.in_(message_ids))
        return {r.message_id: _record(r._mapping) for r in await self.conn.execute(query)}

    async def for_conversation(self, conversation_id: UUID) -> dict[UUID, FeedbackRecord]:
        query = select(message_feedback).where(
            message_feedback.c.conversation_id == conversation_id
        )
        return {r.message_id: _record(r._mapping) for r in await self.conn.execute(query)}

    async def unsynced(self, *, older_than: datetime, limit: int) -> list[FeedbackRecord]:
        """Feedback MongoDB has not got yet (the relay's work list)."""
        f = message_feedback.c
        query = (
            select(message_feedback)
            .where(f.synced_at.is_(None), f.updated_at < older_than)
            .order_by(f.updated_at)
            .limit(limit)
        )
        return [_record(r._mapping) for r in await self.conn.execute(query)]


class FeedbackRepository(FeedbackReader):
    def __init__(self, conn: WriteConnection) -> None:
        super().__init__(conn)

    async def put(
        self,
        *,
        message_id: UUID,
        conversation_id: UUID,
        user_id: UUID,
        rating: Rating,
        comment: str | None,
        now: datetime,
    ) -> FeedbackRecord:
        """Insert, or replace the earlier feedback; either way MongoDB is owed it again."""
        f = message_feedback.c
        values = {"rating": rating, "comment": comment, "updated_at": now, "synced_at": None}
        replaced = (
            await self.conn.execute(
                update(message_feedback)
                .where(f.message_id == message_id)
                .values(**values)
                .returning(message_feedback)
            )
        ).first()
        if replaced is not None:
            return _record(replaced._mapping)
        inserted = await self.conn.execute(
            insert(message_feedback)
            .values(
                message_id=message_id,
                conversation_id=conversation_id,
                user_id=user_id,
                created_at=now,
                **values,
            )
            .returning(message_feedback)
        )
        return _record(inserted.one()._mapping)

    async def mark_synced(self, record: FeedbackRecord, *, now: datetime) -> bool:
        """Only the version written to MongoDB: a newer one stays owed."""
        f = message_feedback.c
        result: Any = await self.conn.execute(
            update(message_feedback)
            .where(and_(f.message_id == record.message_id, f.updated_at == record.updated_at))
            .values(synced_at=now)
        )
        return bool(result.rowcount == 1)
