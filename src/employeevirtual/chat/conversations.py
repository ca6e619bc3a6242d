"""Conversation metadata: list, read, rename/archive, delete (both stores, audited); a
conversation's history, a page at a time (audited)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import TypeVar
from uuid import UUID

from pymongo.errors import PyMongoError
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from employeevirtual.chat.history import HistoryPage, read_history
from employeevirtual.errors import NotFound
from employeevirtual.stores.mongo.documents import DocumentStore
from employeevirtual.stores.records import ConversationRecord, UserRecord
from employeevirtual.stores.sql.audit import AuditRepository
from employeevirtual.stores.sql.conversations import (
    ConversationChanges,
    ConversationFilters,
    ConversationReader,
    ConversationRepository,
)
from employeevirtual.stores.sql.engine import WriteConnection, read_connection, write_transaction
from employeevirtual.stores.sql.sync import SyncReader

__all__ = [
    "ConversationChanges",
    "ConversationFilters",
    "ConversationService",
    "record_audit_read",
]

log = logging.getLogger(__name__)

T = TypeVar("T")


async def record_audit_read(
    engine: AsyncEngine,
    user: UserRecord,
    conversation: ConversationRecord,
    *,
    what: str,
    client_ip: str | None,
) -> None:
    """An admin reading someone else's conversation leaves an audit row (before the data is
    returned: no row, no data)."""
    if conversation.user_id == user.id:
        return
    async with write_transaction(engine) as conn:
        await AuditRepository(conn).record(
            action="conversation.audit_read",
            actor_id=user.id,
            target_type="conversation",
            target_id=str(conversation.id),
            details={"owner_id": str(conversation.user_id), "read": what},
            client_ip=client_ip,
            now=datetime.now(UTC),
        )


class ConversationService:
    def __init__(self, *, engine: AsyncEngine, documents: DocumentStore) -> None:
        self.engine = engine
        self.documents = documents

    async def list(
        self,
        user: UserRecord,
        *,
        limit: int,
        after: tuple[datetime, UUID] | None,
        filters: ConversationFilters,
        after_cost: tuple[Decimal, UUID] | None = None,
        by_cost: bool = False,
    ) -> tuple[list[ConversationRecord], bool]:
        """A page, latest activity (or highest cost) first, and whether more follow."""
        async with read_connection(self.engine) as conn:
            rows = await ConversationReader(conn).list(
                user,
                limit=limit + 1,
                after=after,
                filters=filters,
                after_cost=after_cost,
                by_cost=by_cost,
            )
        return rows[:limit], len(rows) > limit

    async def get(
        self, user: UserRecord, conversation_id: UUID, *, client_ip: str | None = None
    ) -> ConversationRecord:
        """The owner's conversation, or any for an admin (that read is audited)."""
        async with read_connection(self.engine) as conn:
            found = await ConversationReader(conn).get(conversation_id, user, include_all=True)
        if found is None:
            raise NotFound(f"conversation {conversation_id} not found")
        await record_audit_read(self.engine, user, found, what="conversation", client_ip=client_ip)
        return found

    async def history(
        self,
        user: UserRecord,
        conversation_id: UUID,
        *,
        limit: int,
        before: int | None,
        include_superseded: bool = False,
        client_ip: str | None = None,
    ) -> HistoryPage:
        """A page of messages, newest page first, oldest first within it; MongoDB when it has
        every message of the page, SQL otherwise (``history.read_history``). An admin's read
        of someone else's conversation is audited before the page is returned."""
        page = await read_history(
            self.engine,
            self.documents,
            user,
            conversation_id,
            limit=limit,
            before=before,
            include_superseded=include_superseded,
        )
        await record_audit_read(
            self.engine, user, page.conversation, what="messages", client_ip=client_ip
        )
        return page

    async def update(
        self, user: UserRecord, conversation_id: UUID, changes: ConversationChanges
    ) -> ConversationRecord:
        now = datetime.now(UTC)
        async with write_transaction(self.engine) as conn:
            repo = ConversationRepository(conn)
            updated = await repo.get(conversation_id, user)
            if updated is None:
                raise NotFound(f"conversation {conversation_id} not found")
            if changes.model_fields_set:
                updated = await repo.update(conversation_id, changes, now=now)
        mirrored = {
            ("metadata.status" if key == "status" else key): value
            for key, value in changes.model_dump(exclude_unset=True).items()
        }
        if mirrored:
            try:
                await self.documents.set_conversation_fields(conversation_id, mirrored)
            except PyMongoError as exc:
                log.warning("MongoDB update of %s failed: %s", conversation_id, type(exc).__name__)
        return updated

    async def delete(
        self, user: UserRecord, conversation_id: UUID, *, client_ip: str | None
    ) -> None:
        now = datetime.now(UTC)

        async def write(conn: WriteConnection) -> None:
            repo = ConversationRepository(conn)
            found = await repo.get(conversation_id, user)
            if found is None:
                raise NotFound(f"conversation {conversation_id} not found")
            await repo.delete(conversation_id)
            await AuditRepository(conn).record(
                action="conversation.delete",
                actor_id=user.id,
                target_type="conversation",
                target_id=str(conversation_id),
                details={"message_count": found.message_count, "title": found.title},
                client_ip=client_ip,
                now=now,
            )

        await self._delete_in_sql(conversation_id, write)
        await self._delete_documents(conversation_id)

    async def purge(
        self, conversation_id: UUID, *, actor_id: UUID | None, reason: str, now: datetime
    ) -> bool:
        """Delete a conversation by policy (retention, erasure): the same two steps as a user's
        delete (SQL with its audit row, then MongoDB; the reconciler removes what MongoDB
        missed), with an audit row that keeps no title. False when it was already gone."""

        async def write(conn: WriteConnection) -> bool:
            found = await SyncReader(conn).get(conversation_id)
            if found is None:
                return False
            await ConversationRepository(conn).delete(conversation_id)
            await AuditRepository(conn).record(
                action="conversation.purge",
                actor_id=actor_id,
                target_type="conversation",
                target_id=str(conversation_id),
                details={"reason": reason, "message_count": found.message_count},
                now=now,
            )
            return True

        purged = await self._delete_in_sql(conversation_id, write)
        await self._delete_documents(conversation_id)
        return purged

    async def _delete_in_sql(
        self, conversation_id: UUID, write: Callable[[WriteConnection], Awaitable[T]]
    ) -> T:
        """``write`` (a conversation's delete with its audit row) in a write transaction, run
        once more in a fresh one when a constraint refuses it. On PostgreSQL (READ COMMITTED) a
        turn, an interrupted turn's record or new feedback committed between the delete's
        ``DELETE messages`` and its ``DELETE conversations`` leaves rows the first did not see,
        and the conversation's row then fails their foreign key; the second transaction sees
        and deletes them, so the delete wins the race. The first rolled back whole (no audit
        row); a second refusal raises (409)."""
        try:
            async with write_transaction(self.engine) as conn:
                return await write(conn)
        except IntegrityError as exc:
            log.info(
                "delete of %s refused (%s), rows written meanwhile; run again",
                conversation_id,
                type(exc).__name__,
            )
        async with write_transaction(self.engine) as conn:
            return await write(conn)

    async def _delete_documents(self, conversation_id: UUID) -> None:
        try:
            await self.documents.delete_conversation(conversation_id)
        except PyMongoError as exc:
            log.warning(
                "MongoDB delete of %s failed (%s); the reconciler removes the orphan",
                conversation_id,
                type(exc).__name__,
            )
