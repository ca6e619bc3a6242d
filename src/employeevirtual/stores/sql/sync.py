"""What the relay and the reconciler read and move in SQL: which conversations owe MongoDB
messages, and the ``synced_seq`` marker. Like every repository, it never commits."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Select, and_, func, or_, select, true, update

from employeevirtual.stores.records import ConversationRecord
from employeevirtual.stores.sql.engine import Connection, WriteConnection
from employeevirtual.stores.sql.rows import conversation_from_row, rowcount
from employeevirtual.stores.sql.tables import conversations, messages, users

__all__ = ["SKIP_LOCKED_DIALECTS", "SyncBacklog", "SyncReader", "SyncRepository"]

# Dialects that can claim rows past other workers' locks; elsewhere (SQLite) one relay runs.
SKIP_LOCKED_DIALECTS = frozenset({"postgresql", "mssql", "oracle", "mysql", "mariadb"})
# ids per ``IN`` list: SQL Server takes at most 2,100 parameters a statement
IN_CHUNK = 1000


@dataclass(frozen=True, slots=True)
class SyncBacklog:
    oldest_unsynced_at: datetime | None  # when the oldest message MongoDB lacks was written
    conversations: int  # how many conversations owe messages


def _unsynced(idle_before: datetime, limit: int) -> Select[tuple[Any, ...]]:
    c = conversations.c
    return (
        select(conversations)
        .where(c.synced_seq < c.message_count, c.last_message_at < idle_before)
        .order_by(c.last_message_at)
        .limit(limit)
    )


class SyncReader:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    async def unsynced(self, *, idle_before: datetime, limit: int) -> list[ConversationRecord]:
        """Conversations that owe MongoDB messages and had no turn since ``idle_before``,
        oldest activity first."""
        query = _unsynced(idle_before, limit)
        return [conversation_from_row(r) for r in await self.conn.execute(query)]

    async def backlog(self) -> SyncBacklog:
        c, m = conversations.c, messages.c
        query = (
            select(func.min(m.created_at), func.count())
            .select_from(
                conversations.join(
                    messages, and_(m.conversation_id == c.id, m.seq == c.synced_seq + 1)
                )
            )
            .where(c.synced_seq < c.message_count)
        )
        row = (await self.conn.execute(query)).one()
        oldest: datetime | None = row[0]  # MIN() keeps the column's type: aware UTC
        if oldest is not None and oldest.tzinfo is None:
            oldest = oldest.replace(tzinfo=UTC)
        return SyncBacklog(oldest, int(row[1]))

    async def conversations_page(
        self, *, after: UUID | None, limit: int, idle_before: datetime
    ) -> list[ConversationRecord]:
        """All conversations in id order (keyset pages), except those with a turn in flight."""
        c = conversations.c
        query = select(conversations).where(
            or_(c.last_message_at.is_(None), c.last_message_at < idle_before)
        )
        if after is not None:
            query = query.where(c.id > after)
        query = query.order_by(c.id).limit(limit)
        return [conversation_from_row(r) for r in await self.conn.execute(query)]

    async def get(self, conversation_id: UUID) -> ConversationRecord | None:
        query = select(conversations).where(conversations.c.id == conversation_id)
        row = (await self.conn.execute(query)).first()
        return conversation_from_row(row) if row else None

    async def existing(self, conversation_ids: Sequence[UUID]) -> set[UUID]:
        """Those of ``conversation_ids`` SQL holds: one statement per 1,000 ids."""
        ids = list(dict.fromkeys(conversation_ids))
        found: set[UUID] = set()
        for start in range(0, len(ids), IN_CHUNK):
            chunk = ids[start : start + IN_CHUNK]
            query = select(conversations.c.id).where(conversations.c.id.in_(chunk))
            found |= {row[0] for row in await self.conn.execute(query)}
        return found

    async def kept_by_active_owners(self, conversation_ids: Sequence[UUID]) -> set[UUID]:
        """Those of ``conversation_ids`` that still exist and whose owner is active (not
        deactivated, as an erasure does first): one statement per 1,000 ids."""
        c, u = conversations.c, users.c
        ids = list(dict.fromkeys(conversation_ids))
        found: set[UUID] = set()
        for start in range(0, len(ids), IN_CHUNK):
            query = (
                select(c.id)
                .select_from(conversations.join(users, u.id == c.user_id))
                .where(c.id.in_(ids[start : start + IN_CHUNK]), u.is_active == true())
            )
            found |= {row[0] for row in await self.conn.execute(query)}
        return found


class SyncRepository(SyncReader):
    def __init__(self, conn: WriteConnection) -> None:
        super().__init__(conn)

    async def claim_unsynced(
        self, *, idle_before: datetime, limit: int
    ) -> list[ConversationRecord]:
        """``unsynced``, locked for this transaction, skipping rows another relay (or a turn)
        holds: ``FOR UPDATE SKIP LOCKED``, or ``UPDLOCK, READPAST`` on SQL Server (SQLAlchemy
        renders no FOR UPDATE there, so the hint is given explicitly)."""
        query = (
            _unsynced(idle_before, limit)
            .with_for_update(skip_locked=True)
            .with_hint(conversations, "WITH (UPDLOCK, READPAST, ROWLOCK)", dialect_name="mssql")
        )
        return [conversation_from_row(r) for r in await self.conn.execute(query)]

    async def advance(self, conversation_id: UUID, *, to_seq: int) -> bool:
        """Record that MongoDB holds every message up to ``to_seq``. Only ever moves forward:
        a compare-and-set against whatever another relay or the acks wrote meanwhile."""
        c = conversations.c
        result = await self.conn.execute(
            update(conversations)
            .where(c.id == conversation_id, c.synced_seq < to_seq, c.message_count >= to_seq)
            .values(synced_seq=to_seq)
        )
        return rowcount(result) > 0
