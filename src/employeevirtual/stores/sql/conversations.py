"""``empl.conversations``: a conversation's row, its counters and its sync marker. Like every
repository, it never commits."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, cast
from uuid import UUID

from pydantic import BaseModel, ConfigDict
from sqlalchemy import bindparam, delete, func, insert, or_, select, true, update
from sqlalchemy.exc import IntegrityError

from employeevirtual.stores.records import (
    AgentRecord,
    BudgetRecord,
    ConversationRecord,
    ConversationStatus,
    MessageRecord,
    TurnUsage,
    UserRecord,
)
from employeevirtual.stores.sql.budgets import budgets_from_row, with_budgets
from employeevirtual.stores.sql.direct import DirectStatement
from employeevirtual.stores.sql.engine import (
    Connection,
    OneTrip,
    WriteConnection,
    replay_refused,
)
from employeevirtual.stores.sql.keyset import after_desc
from employeevirtual.stores.sql.memory import MemoryRepository
from employeevirtual.stores.sql.messages import MessageRepository, message_parameters
from employeevirtual.stores.sql.one_trip import Step, run_transaction
from employeevirtual.stores.sql.rows import agent_from_row, conversation_from_row
from employeevirtual.stores.sql.tables import (
    agents,
    conversations,
    message_feedback,
    messages,
    users,
)
from employeevirtual.stores.sql.turn_readback import stored_turn
from employeevirtual.stores.sql.turn_statements import (
    APPLY_TURN,
    INSERT_TURN_MESSAGE,
    MESSAGE_COLUMNS,
    added,
    apply_turn_with_messages,
    numbered,
    turn_parameters,
)

__all__ = [
    "ConversationChanges",
    "ConversationFilters",
    "ConversationReader",
    "ConversationRepository",
    "NewConversation",
]

log = logging.getLogger(__name__)


def _turn_read() -> Any:
    """The turn's read (``ConversationRepository.get_with_agent``), built once with bound
    parameters (``conversation_id``, ``user_id``): building and cache-keying its joins and
    labelled columns for every turn cost about 0.5 ms of CPU."""
    c = conversations.c
    agent_cols = [col.label(f"a_{col.name}") for col in agents.c]
    base, budget_columns = with_budgets(
        conversations.join(agents, agents.c.id == c.agent_id).join(users, users.c.id == c.user_id),
        users.c.id,
        agents.c.id,
    )
    return (
        select(conversations, *agent_cols, users.c.role.label("u_role"), *budget_columns)
        .select_from(base)
        .where(
            c.id == bindparam("conversation_id", type_=c.id.type),
            c.user_id == bindparam("user_id", type_=c.user_id.type),
            users.c.is_active == true(),
        )
    )


_TURN_READ = DirectStatement(_turn_read())


@dataclass(frozen=True, slots=True)
class NewConversation:
    """A conversation created by its first turn."""

    id: UUID
    user_id: UUID
    agent_id: UUID
    title: str
    metadata: dict[str, Any] = field(default_factory=dict)


class ConversationChanges(BaseModel):
    """What the owner may change; only the fields set are written."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    title: str | None = None
    status: ConversationStatus | None = None


@dataclass(frozen=True, slots=True)
class ConversationFilters:
    agent_id: UUID | None = None
    status: ConversationStatus | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None


class ConversationReader:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    async def count_owned(self, user_id: UUID) -> int:
        """How many conversations the user keeps (active and archived)."""
        query = (
            select(func.count())
            .select_from(conversations)
            .where(conversations.c.user_id == user_id)
        )
        return int((await self.conn.execute(query)).scalar_one())

    async def get(
        self, conversation_id: UUID, user: UserRecord, *, include_all: bool = False
    ) -> ConversationRecord | None:
        """The conversation if ``user`` owns it (or ``include_all`` for an admin's audit read)."""
        query = select(conversations).where(conversations.c.id == conversation_id)
        if not (include_all and user.is_admin):
            query = query.where(conversations.c.user_id == user.id)
        row = (await self.conn.execute(query)).first()
        return conversation_from_row(row) if row else None

    async def get_with_agent(
        self, conversation_id: UUID, user_id: UUID
    ) -> tuple[ConversationRecord, AgentRecord, bool, list[BudgetRecord]] | None:
        """The owner's conversation, its agent, whether the owner is an admin, and the owner's
        and the agent's budgets, in one round trip (the turn's read); None also when the owner
        is gone or deactivated, so the turn needs no separate user read. The role lets the
        turn re-check the agent's visibility."""
        parameters = {"conversation_id": conversation_id, "user_id": user_id}
        row = await _TURN_READ.first(self.conn, parameters)
        if row is None:
            return None
        return (
            conversation_from_row(row),
            agent_from_row(row, "a_"),
            row.u_role == "admin",
            budgets_from_row(row._mapping),
        )

    async def with_count(
        self, user_id: UUID, agent_id: UUID, *, message_count: int, limit: int
    ) -> list[ConversationRecord]:
        """The user's active conversations with an agent holding exactly ``message_count``
        messages, latest activity first."""
        c = conversations.c
        query = (
            select(conversations)
            .where(
                c.user_id == user_id,
                c.agent_id == agent_id,
                c.status == "active",
                c.message_count == message_count,
            )
            .order_by(c.last_message_at.desc(), c.id.desc())
            .limit(limit)
        )
        return [conversation_from_row(r) for r in await self.conn.execute(query)]

    async def list(
        self,
        user: UserRecord,
        *,
        limit: int,
        after: tuple[datetime, UUID] | None = None,
        filters: ConversationFilters = ConversationFilters(),
        after_cost: tuple[Decimal, UUID] | None = None,
        by_cost: bool = False,
    ) -> list[ConversationRecord]:
        """Latest activity first, or (``by_cost``) most expensive first; keyset pages."""
        c = conversations.c
        query = select(conversations).where(c.user_id == user.id)
        if filters.agent_id is not None:
            # the conversations the agent took part in: its current agent, or one that wrote a
            # message before a handoff (a probe of IX_messages_conversation_agent each)
            m = messages.c
            wrote = (
                select(m.id)
                .where(m.conversation_id == c.id, m.agent_id == filters.agent_id)
                .exists()
            )
            query = query.where(or_(c.agent_id == filters.agent_id, wrote))
        if filters.status is not None:
            query = query.where(c.status == filters.status)
        if filters.created_after is not None:
            query = query.where(c.created_at >= filters.created_after)
        if filters.created_before is not None:
            query = query.where(c.created_at < filters.created_before)
        if after is not None:
            query = query.where(after_desc(c.last_message_at, c.id, after))
        if by_cost:
            if after_cost is not None:
                query = query.where(after_desc(c.total_cost, c.id, after_cost))
            query = query.order_by(c.total_cost.desc(), c.id.desc()).limit(limit)
        else:
            query = query.order_by(c.last_message_at.desc(), c.id.desc()).limit(limit)
        return [conversation_from_row(r) for r in await self.conn.execute(query)]


class ConversationRepository(ConversationReader):
    def __init__(self, conn: WriteConnection) -> None:
        super().__init__(conn)

    async def create(
        self,
        new: NewConversation,
        usage: TurnUsage | None,
        *,
        messages: int,
        now: datetime,
        error: str | None,
    ) -> ConversationRecord:
        """The conversation with its first turn's counters (``messages`` seqs taken)."""
        tokens, cost, response_time, runs = added(usage)
        statement = (
            insert(conversations)
            .values(
                id=new.id,
                user_id=new.user_id,
                agent_id=new.agent_id,
                title=new.title,
                status="active",
                metadata=new.metadata,
                created_at=now,
                updated_at=now,
                last_message_at=now,
                message_count=messages,
                total_tokens=tokens,
                total_cost=cost,
                total_response_time=response_time,
                agent_runs=runs,
                synced_seq=0,
                last_error=error,
            )
            .returning(conversations)
        )
        return conversation_from_row((await self.conn.execute(statement)).one())

    async def apply_turn(
        self,
        conversation_id: UUID,
        usage: TurnUsage | None,
        *,
        messages: int,
        now: datetime,
        error: str | None,
    ) -> ConversationRecord | None:
        """Take the next ``messages`` seqs and add the turn's counters, atomically: the row
        after the update (the turn's seqs end at its ``message_count``), None when gone."""
        parameters = turn_parameters(conversation_id, usage, messages, now, error)
        row = await APPLY_TURN.first(self.conn, parameters)
        return conversation_from_row(row) if row else None

    async def append(
        self,
        conversation_id: UUID,
        new: Sequence[MessageRecord],
        usage: TurnUsage | None,
        *,
        now: datetime,
        error: str | None,
    ) -> tuple[ConversationRecord, list[MessageRecord]] | None:
        """``apply_turn`` for ``new`` and ``new`` stored with the seqs it took: the row after
        the update and the stored messages, None (nothing written) when the conversation is
        gone. On PostgreSQL one statement, so one round trip, atomic on its own (see
        ``write_transaction``'s ``single_statement``); on SQLite's ``OneTrip`` the UPDATE and
        the INSERT as their own transaction in one trip; elsewhere the UPDATE, then the INSERT.
        A single statement whose answer was lost after it committed is read back: the stored
        messages and the row as it is now, which may be past the turn (``stored_turn``)."""
        if isinstance(self.conn, OneTrip):
            return await self.conn.once(
                lambda: self._append_in_one_trip(conversation_id, new, usage, now=now, error=error)
            )
        if self.conn.dialect.name != "postgresql":
            record = await self.apply_turn(
                conversation_id, usage, messages=len(new), now=now, error=error
            )
            if record is None:
                return None
            stored = numbered(record, new)
            await MessageRepository(cast(WriteConnection, self.conn)).insert_many(stored)
            return record, stored
        statement = apply_turn_with_messages(len(new))
        parameters = turn_parameters(conversation_id, usage, len(new), now, error)
        for i, m in enumerate(new):
            values = message_parameters(m)
            parameters.update({f"{name}_{i}": values[name] for name in MESSAGE_COLUMNS})
        try:
            row = await statement.first(self.conn, parameters)
        except IntegrityError as exc:
            return await self._found_stored(exc, conversation_id, new)
        if row is None:
            return None
        record = conversation_from_row(row)
        return record, numbered(record, new)

    async def _found_stored(
        self, error: IntegrityError, conversation_id: UUID, new: Sequence[MessageRecord]
    ) -> tuple[ConversationRecord, list[MessageRecord]]:
        """The turn as its write's first run stored it, when ``error`` refused the replay of
        that write (its connection lost after it committed, before its answer): the turn is
        answered as stored, not as a conflict. ``error`` is raised otherwise."""
        reader = replay_refused(cast(WriteConnection, self.conn), error)
        found = await stored_turn(reader, conversation_id, new) if reader is not None else None
        if found is None:
            raise error
        log.warning(
            "conversation %s: the turn's write committed but its answer was lost; its replay "
            "was refused and the turn found stored (seq %d-%d)",
            conversation_id,
            found[1][0].seq,
            found[1][-1].seq,
        )
        return found

    async def _append_in_one_trip(
        self,
        conversation_id: UUID,
        new: Sequence[MessageRecord],
        usage: TurnUsage | None,
        *,
        now: datetime,
        error: str | None,
    ) -> tuple[ConversationRecord, list[MessageRecord]] | None:
        counters = turn_parameters(conversation_id, usage, len(new), now, error)
        rows = [
            {**message_parameters(m), "conversation_id": conversation_id, "back": len(new) - 1 - i}
            for i, m in enumerate(new)
        ]
        found = await run_transaction(
            self.conn,
            [
                Step(APPLY_TURN, counters, needs_row=True),
                Step(INSERT_TURN_MESSAGE, rows, many=True),
            ],
        )
        if found is None:
            return None
        record = conversation_from_row(found[0][0])
        return record, numbered(record, new)

    async def update(
        self, conversation_id: UUID, changes: ConversationChanges, *, now: datetime
    ) -> ConversationRecord:
        values = changes.model_dump(exclude_unset=True)
        statement = (
            update(conversations)
            .where(conversations.c.id == conversation_id)
            .values(**values, updated_at=now)
            .returning(conversations)
        )
        return conversation_from_row((await self.conn.execute(statement)).one())

    async def delete(self, conversation_id: UUID) -> None:
        """The conversation with everything that refers to it. Its row locks set the order every
        writer of a conversation's rows keeps on PostgreSQL and SQL Server: its rows in other
        tables (summaries, memories in id order, feedback, messages) before its own row, and
        several conversations in id order. A writer that took the conversation's row first and
        one of those after it could deadlock with this delete (the sync acks' flush did). On
        PostgreSQL rows committed between its statements (a turn's messages) fail the last
        one's foreign key; ``ConversationService`` runs the transaction again once."""
        # its summaries and its own memories (issue 18)
        await MemoryRepository(cast(WriteConnection, self.conn)).delete_for_conversation(
            conversation_id
        )
        await self.conn.execute(
            delete(message_feedback).where(message_feedback.c.conversation_id == conversation_id)
        )
        await self.conn.execute(
            delete(messages).where(messages.c.conversation_id == conversation_id)
        )
        await self.conn.execute(delete(conversations).where(conversations.c.id == conversation_id))

    async def ack_synced(self, acks: Sequence[tuple[UUID, int, int]]) -> None:
        """Advance ``synced_seq`` over contiguous ranges only: (conversation, first, last) moves
        it to ``last`` when it stands at ``first - 1``; a gap stays for the relay to fill."""
        if not acks:
            return
        c = conversations.c
        statement = (
            update(conversations)
            .where(c.id == bindparam("cid"), c.synced_seq == bindparam("previous"))
            .values(synced_seq=bindparam("new_seq"))
        )
        await self.conn.execute(
            statement,
            [{"cid": cid, "previous": first - 1, "new_seq": last} for cid, first, last in acks],
        )
