"""``empl.memories`` (issue 18), and the turn's one read of memories and summary together; the
summaries' own statements are in ``summaries``. Never commits: the caller owns the transaction."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any
from uuid import UUID

from sqlalchemy import (
    ColumnElement,
    Integer,
    String,
    Unicode,
    Uuid,
    and_,
    bindparam,
    cast,
    delete,
    func,
    insert,
    literal,
    null,
    or_,
    select,
    union_all,
    update,
)

from employeevirtual.stores.sql.direct import DirectStatement
from employeevirtual.stores.sql.engine import WriteConnection
from employeevirtual.stores.sql.keyset import after_desc
from employeevirtual.stores.sql.rows import rowcount
from employeevirtual.stores.sql.summaries import (
    SummaryReader,
    SummaryRecord,
    SummaryRepository,
    latest_version,
)
from employeevirtual.stores.sql.tables import conversation_summaries, memories

__all__ = [
    "MemoryReader",
    "MemoryRecord",
    "MemoryRepository",
    "MemoryScope",
    "TurnMemory",
]


@dataclass(frozen=True, slots=True)
class MemoryRecord:
    id: UUID
    user_id: UUID
    agent_id: UUID
    conversation_id: UUID | None  # None: shared by the agent's conversations with the person
    content: str
    source_message_id: UUID | None
    source_conversation_id: UUID | None
    source_tool_call: str | None
    version: int
    synced_version: int
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class MemoryScope:
    """Whose memories a turn sees: the person's with this agent, shared by its conversations
    (``shared``) or only this conversation's."""

    user_id: UUID
    agent_id: UUID
    conversation_id: UUID | None
    shared: bool

    @property
    def owner_conversation(self) -> UUID | None:
        """The conversation a new memory belongs to (None: shared)."""
        return None if self.shared else self.conversation_id

    def where(self) -> ColumnElement[bool]:
        return _scope_where(self.user_id, self.agent_id, self.conversation_id, shared=self.shared)


def _scope_where(
    user_id: Any, agent_id: Any, conversation_id: Any, *, shared: bool
) -> ColumnElement[bool]:
    """A scope's memories; the ids are values or bound parameters (``conversation_id`` None:
    the scope has no conversation)."""
    m = memories.c
    base = and_(m.user_id == user_id, m.agent_id == agent_id, m.deleted_at.is_(None))
    if shared:
        mine: ColumnElement[bool] = m.conversation_id.is_(None)
        if conversation_id is not None:  # kept from when the agent did not share
            mine = or_(mine, m.conversation_id == conversation_id)
        return and_(base, mine)
    return and_(base, m.conversation_id == conversation_id)


@cache
def _turn_query(*, shared: bool, in_conversation: bool, summary: bool) -> Any:
    """``MemoryReader.for_turn``'s statement for one shape of scope, built once with bound
    parameters (``user_id``, ``agent_id``, ``conversation_id``): building and cache-keying it
    for every turn cost about 0.5 ms of CPU. None: the turn reads nothing."""
    m, s = memories.c, conversation_summaries.c
    conversation = (
        bindparam("conversation_id", type_=m.conversation_id.type) if in_conversation else None
    )
    parts = []
    if shared or in_conversation:
        where = _scope_where(
            bindparam("user_id", type_=m.user_id.type),
            bindparam("agent_id", type_=m.agent_id.type),
            conversation,
            shared=shared,
        )
        parts.append(
            select(
                literal("m", String(1)).label("kind"),
                m.id.label("id"),
                m.content.label("content"),
                m.version.label("n1"),
                literal(0, Integer).label("n2"),
                m.created_at.label("at"),
            ).where(where)
        )
    if summary and conversation is not None:
        parts.append(
            select(
                literal("s", String(1)).label("kind"),
                cast(null(), Uuid).label("id"),
                cast(s.content, Unicode).label("content"),
                s.covered_seq.label("n1"),
                s.version.label("n2"),
                s.created_at.label("at"),
            ).where(
                s.conversation_id == conversation,
                s.version == latest_version(conversation),
            )
        )
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else union_all(*parts)


@cache
def _direct_turn_query(*, shared: bool, in_conversation: bool, summary: bool) -> Any:
    query = _turn_query(shared=shared, in_conversation=in_conversation, summary=summary)
    return None if query is None else DirectStatement(query)


@dataclass(frozen=True, slots=True)
class TurnMemory:
    """What a turn is given: the scope's memories (oldest first) and the current summary."""

    memories: list[MemoryRecord]
    summary: SummaryRecord | None


def _memory(row: Any) -> MemoryRecord:
    m = row._mapping
    return MemoryRecord(**{k: m[k] for k in MemoryRecord.__slots__})


class MemoryReader(SummaryReader):
    """The memories (and, from ``SummaryReader``, the conversation summaries)."""

    async def for_turn(self, scope: MemoryScope, *, summary: bool) -> TurnMemory:
        """The scope's memories and the conversation's current summary in one statement (the
        turn's only memory read). The scope is bounded by the per-scope limit on writes."""
        query = _direct_turn_query(
            shared=scope.shared,
            in_conversation=scope.conversation_id is not None,
            summary=summary,
        )
        if query is None:
            return TurnMemory([], None)
        parameters = {
            "user_id": scope.user_id,
            "agent_id": scope.agent_id,
            "conversation_id": scope.conversation_id,
        }
        found: list[MemoryRecord] = []
        current: SummaryRecord | None = None
        for row in await query.rows(self.conn, parameters):
            if row.kind == "s":
                assert scope.conversation_id is not None
                current = SummaryRecord(
                    conversation_id=scope.conversation_id,
                    version=row.n2,
                    user_id=scope.user_id,
                    covered_seq=row.n1,
                    content=row.content,
                    model="",
                    messages=0,
                    created_at=row.at,
                )
            else:
                found.append(
                    MemoryRecord(
                        id=row.id,
                        user_id=scope.user_id,
                        agent_id=scope.agent_id,
                        conversation_id=None,
                        content=row.content,
                        source_message_id=None,
                        source_conversation_id=None,
                        source_tool_call=None,
                        version=row.n1,
                        synced_version=0,
                        created_at=row.at,
                        updated_at=row.at,
                    )
                )
        found.sort(key=lambda r: (r.created_at, r.id))
        return TurnMemory(found, current)

    async def count(self, scope: MemoryScope) -> int:
        query = select(func.count()).select_from(memories).where(scope.where())
        return int((await self.conn.execute(query)).scalar_one())

    async def get(self, memory_id: UUID) -> MemoryRecord | None:
        query = select(memories).where(memories.c.id == memory_id, memories.c.deleted_at.is_(None))
        row = (await self.conn.execute(query)).first()
        return _memory(row) if row else None

    async def page(
        self,
        user_id: UUID,
        *,
        agent_id: UUID | None,
        limit: int,
        after: tuple[datetime, UUID] | None,
    ) -> list[MemoryRecord]:
        """The person's memories, newest first, keyset-paged on (created_at, id)."""
        m = memories.c
        query = select(memories).where(m.user_id == user_id, m.deleted_at.is_(None))
        if agent_id is not None:
            query = query.where(m.agent_id == agent_id)
        if after is not None:
            query = query.where(after_desc(m.created_at, m.id, after))
        query = query.order_by(m.created_at.desc(), m.id.desc()).limit(limit)
        return [_memory(r) for r in await self.conn.execute(query)]

    async def of_user(
        self, user_id: UUID, *, after: UUID | None, limit: int
    ) -> list[dict[str, Any]]:
        """The person's live memories as plain rows, by id (their export)."""
        m = memories.c
        query = select(memories).where(m.user_id == user_id, m.deleted_at.is_(None))
        if after is not None:
            query = query.where(m.id > after)
        rows = await self.conn.execute(query.order_by(m.id).limit(limit))
        return [dict(r._mapping) for r in rows]

    async def unsynced_memories(self, *, limit: int) -> list[MemoryRecord]:
        m = memories.c
        query = (
            select(memories).where(m.synced_version < m.version).order_by(m.updated_at).limit(limit)
        )
        return [_memory(r) for r in await self.conn.execute(query)]

    async def live_versions(self, *, after: UUID | None, limit: int) -> list[tuple[UUID, int]]:
        """(id, version) of live memories, by id: what MongoDB should hold (reconciler)."""
        m = memories.c
        query = select(m.id, m.version).where(m.deleted_at.is_(None))
        if after is not None:
            query = query.where(m.id > after)
        rows = await self.conn.execute(query.order_by(m.id).limit(limit))
        return [(r[0], r[1]) for r in rows]

    async def by_ids(self, ids: Sequence[UUID]) -> list[MemoryRecord]:
        if not ids:
            return []
        query = select(memories).where(memories.c.id.in_(list(ids)))
        return [_memory(r) for r in await self.conn.execute(query)]

    async def live_count(self) -> int:
        query = select(func.count()).select_from(memories).where(memories.c.deleted_at.is_(None))
        return int((await self.conn.execute(query)).scalar_one())


class MemoryRepository(MemoryReader, SummaryRepository):
    def __init__(self, conn: WriteConnection) -> None:
        self.conn = conn

    async def add(
        self,
        *,
        memory_id: UUID,
        scope: MemoryScope,
        content: str,
        source_message_id: UUID | None,
        source_conversation_id: UUID | None,
        source_tool_call: str | None,
        now: datetime,
    ) -> None:
        await self.conn.execute(
            insert(memories).values(
                id=memory_id,
                user_id=scope.user_id,
                agent_id=scope.agent_id,
                conversation_id=scope.owner_conversation,
                content=content,
                source_message_id=source_message_id,
                source_conversation_id=source_conversation_id,
                source_tool_call=source_tool_call,
                version=1,
                synced_version=0,
                created_at=now,
                updated_at=now,
            )
        )

    async def forget(self, memory_id: UUID, *, user_id: UUID, now: datetime) -> int | None:
        """Empty the memory at once and leave a tombstone until MongoDB's copy is gone; its
        new version, or None when it was not the person's (or already forgotten)."""
        m = memories.c
        result = await self.conn.execute(
            update(memories)
            .where(m.id == memory_id, m.user_id == user_id, m.deleted_at.is_(None))
            .values(content="", deleted_at=now, updated_at=now, version=m.version + 1)
            .returning(m.version)
        )
        row = result.first()
        return int(row[0]) if row else None

    async def change(
        self, memory_id: UUID, *, user_id: UUID, content: str, now: datetime
    ) -> MemoryRecord | None:
        m = memories.c
        result = await self.conn.execute(
            update(memories)
            .where(m.id == memory_id, m.user_id == user_id, m.deleted_at.is_(None))
            .values(content=content, updated_at=now, version=m.version + 1)
            .returning(memories)
        )
        row = result.first()
        return _memory(row) if row else None

    async def mark_synced(self, memory_id: UUID, version: int) -> bool:
        """False when the memory is no longer at ``version`` (changed, forgotten or erased)."""
        m = memories.c
        result = await self.conn.execute(
            update(memories)
            .where(m.id == memory_id, m.version == version)
            .values(synced_version=version)
        )
        return rowcount(result) > 0

    async def drop_tombstone(self, memory_id: UUID, version: int) -> None:
        """The forgotten memory's row, once MongoDB's copy is gone (that version only)."""
        m = memories.c
        await self.conn.execute(
            delete(memories).where(
                m.id == memory_id, m.version == version, m.deleted_at.is_not(None)
            )
        )

    async def lock(self, memory_ids: Sequence[UUID]) -> None:
        """Lock these memories until the transaction ends, in id order (see ``_lock``)."""
        if memory_ids:
            await self._lock(memories.c.id.in_(list(memory_ids)))

    async def _lock(self, where: ColumnElement[bool]) -> None:
        """Lock the memories ``where`` selects, in the database's id order (SQLite serialises
        writes anyway). A transaction that writes several memories takes them so first: two
        such (a conversation's delete, "delete all my memories") then wait for each other
        instead of each holding a memory the other waits for, a deadlock."""
        m = memories.c
        query = (
            select(m.id)
            .where(where)
            .order_by(m.id)
            .with_for_update()
            .with_hint(memories, "WITH (UPDLOCK, ROWLOCK)", dialect_name="mssql")
        )
        await self.conn.execute(query)

    async def delete_for_conversation(self, conversation_id: UUID) -> None:
        """A conversation's summaries and its own memories (a non-sharing agent's) go with it;
        memories shared across the agent's conversations stay."""
        await self.conn.execute(
            delete(conversation_summaries).where(
                conversation_summaries.c.conversation_id == conversation_id
            )
        )
        await self._lock(memories.c.conversation_id == conversation_id)
        await self.conn.execute(
            delete(memories).where(memories.c.conversation_id == conversation_id)
        )

    async def delete_for_user(self, user_id: UUID) -> None:
        await self.conn.execute(
            delete(conversation_summaries).where(conversation_summaries.c.user_id == user_id)
        )
        await self.conn.execute(delete(memories).where(memories.c.user_id == user_id))
