"""Feedback on agent answers: up or down with an optional comment, one per message (a later
one replaces it). SQL first (``message_feedback``, in one transaction with its audit row), then
MongoDB (``chat_messages.feedback`` and the run's ``chat_analytics`` document, whose day the
rollups count again). If MongoDB is away the row stays unsynced and the relay carries it."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from uuid import UUID

from pymongo.errors import PyMongoError
from sqlalchemy.ext.asyncio import AsyncEngine

from employeevirtual.errors import InvalidInput, NotFound
from employeevirtual.stores.mongo.documents import DocumentStore
from employeevirtual.stores.records import FeedbackRecord, Rating, UserRecord
from employeevirtual.stores.sql.audit import AuditRepository
from employeevirtual.stores.sql.conversations import ConversationReader
from employeevirtual.stores.sql.engine import write_transaction
from employeevirtual.stores.sql.feedback import FeedbackRepository

__all__ = ["FeedbackService"]

log = logging.getLogger(__name__)


def _now() -> datetime:
    now = datetime.now(UTC)  # milliseconds: what MongoDB keeps
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


class FeedbackService:
    def __init__(self, *, engine: AsyncEngine, documents: DocumentStore) -> None:
        self.engine = engine
        self.documents = documents

    async def give(
        self,
        user: UserRecord,
        conversation_id: UUID,
        message_id: UUID,
        *,
        rating: Rating,
        comment: str | None,
        client_ip: str | None,
    ) -> FeedbackRecord:
        """Only the conversation's owner rates its agent messages (another's: 404)."""
        now = _now()
        async with write_transaction(self.engine) as conn:
            conversation = await ConversationReader(conn).get(conversation_id, user)
            if conversation is None:
                raise NotFound(f"conversation {conversation_id} not found")
            repo = FeedbackRepository(conn)
            found = await repo.message(message_id, conversation_id)
            if found is None:
                raise NotFound(f"message {message_id} not found in conversation {conversation_id}")
            if found[0] != "agent":
                raise InvalidInput(
                    f"message {message_id} is a {found[0]} message; feedback is for agent answers"
                )
            record = await repo.put(
                message_id=message_id,
                conversation_id=conversation_id,
                user_id=user.id,
                rating=rating,
                comment=comment,
                now=now,
            )
            await AuditRepository(conn).record(
                action="message.feedback",
                actor_id=user.id,
                now=now,
                target_type="message",
                target_id=str(message_id),
                details={"conversation_id": str(conversation_id), "rating": rating},
                client_ip=client_ip,
            )
        await self.push(record)
        return record

    async def push(self, record: FeedbackRecord) -> bool:
        """Write one feedback version to MongoDB and mark it synced in SQL (that version only).
        False when MongoDB failed or does not hold the message yet: left to the relay."""
        try:
            if not await self.documents.set_feedback(record.message_id, record.view()):
                return False
        except PyMongoError as exc:
            log.warning(
                "feedback on %s left to the relay: %s", record.message_id, type(exc).__name__
            )
            return False
        async with write_transaction(self.engine) as conn:
            return await FeedbackRepository(conn).mark_synced(record, now=_now())
