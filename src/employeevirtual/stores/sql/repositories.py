"""Queries over ``empl``. Every function takes the caller's connection and never commits:
the service decides where a transaction begins and ends."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from sqlalchemy import and_, bindparam, delete, func, insert, or_, select, true, update
from sqlalchemy.engine import CursorResult, Row
from sqlalchemy.ext.asyncio import AsyncConnection

from employeevirtual.stores.records import (
    AgentRecord,
    ConversationRecord,
    MessageRecord,
    UserRecord,
)
from employeevirtual.stores.sql.tables import (
    agents,
    audit_log,
    conversations,
    idempotency_keys,
    messages,
    users,
)

__all__ = [
    "AgentRepository",
    "AuditRepository",
    "ConversationRepository",
    "IdempotencyRepository",
    "MessageRepository",
    "StoredKey",
    "SyncRepository",
    "UserRepository",
]


def _user(row: Row[Any]) -> UserRecord:
    m = row._mapping
    return UserRecord(
        id=m["id"],
        email=m["email"],
        name=m["name"],
        role=m["role"],
        is_active=m["is_active"],
        created_at=m["created_at"],
        password_hash=m["password_hash"],
    )


def _agent(row: Row[Any]) -> AgentRecord:
    m = row._mapping
    return AgentRecord(
        id=m["id"],
        user_id=m["user_id"],
        name=m["name"],
        description=m["description"],
        instructions=m["instructions"],
        model=m["model"],
        model_settings=m["model_settings"] or {},
        tools=m["tools"] or [],
        visibility=m["visibility"],
        created_at=m["created_at"],
        updated_at=m["updated_at"],
    )


def _conversation(row: Row[Any]) -> ConversationRecord:
    m = row._mapping
    return ConversationRecord(
        id=m["id"],
        user_id=m["user_id"],
        agent_id=m["agent_id"],
        title=m["title"],
        status=m["status"],
        session_id=m["session_id"],
        metadata=m["metadata"] or {},
        created_at=m["created_at"],
        updated_at=m["updated_at"],
        last_message_at=m["last_message_at"],
        message_count=m["message_count"],
        total_tokens=m["total_tokens"],
        total_cost=Decimal(m["total_cost"]),
        total_response_time=Decimal(m["total_response_time"]),
        agent_runs=m["agent_runs"],
        synced_seq=m["synced_seq"],
        last_error=m["last_error"],
    )


def _message(row: Row[Any]) -> MessageRecord:
    m = row._mapping
    return MessageRecord(
        id=m["id"],
        conversation_id=m["conversation_id"],
        seq=m["seq"],
        user_id=m["user_id"],
        agent_id=m["agent_id"],
        content=m["content"],
        message_type=m["message_type"],
        metadata=m["message_metadata"] or {},
        created_at=m["created_at"],
    )


class UserRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def count(self) -> int:
        return int((await self.conn.execute(select(func.count()).select_from(users))).scalar_one())

    async def get(self, user_id: UUID) -> UserRecord | None:
        row = (await self.conn.execute(select(users).where(users.c.id == user_id))).first()
        return _user(row) if row else None

    async def get_by_email(self, email: str) -> UserRecord | None:
        row = (await self.conn.execute(select(users).where(users.c.email == email))).first()
        return _user(row) if row else None

    async def list_page(self, *, limit: int, after_email: str | None) -> list[UserRecord]:
        """Users ordered by email (the admin listing); ``after_email`` is the cursor."""
        query = select(users).order_by(users.c.email).limit(limit)
        if after_email is not None:
            query = query.where(users.c.email > after_email)
        return [_user(r) for r in await self.conn.execute(query)]

    async def update_fields(self, user_id: UUID, values: dict[str, Any], *, now: datetime) -> None:
        await self.conn.execute(
            update(users).where(users.c.id == user_id).values(**values, updated_at=now)
        )

    async def create(
        self, *, email: str, name: str, password_hash: str, role: str, now: datetime
    ) -> UserRecord:
        user_id = uuid.uuid4()
        values = {
            "id": user_id,
            "email": email,
            "name": name,
            "password_hash": password_hash,
            "role": role,
            "is_active": True,
            "created_at": now,
        }
        await self.conn.execute(insert(users).values(values))
        return UserRecord(
            id=user_id,
            email=email,
            name=name,
            role=role,
            is_active=True,
            created_at=now,
            password_hash=password_hash,
        )


class AgentRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    @staticmethod
    def _visible_to(user: UserRecord) -> Any:
        live = agents.c.deleted_at.is_(None)
        if user.is_admin:
            return live
        return and_(live, or_(agents.c.user_id == user.id, agents.c.visibility == "shared"))

    async def get_visible(self, agent_id: UUID, user: UserRecord) -> AgentRecord | None:
        query = select(agents).where(agents.c.id == agent_id, self._visible_to(user))
        row = (await self.conn.execute(query)).first()
        return _agent(row) if row else None

    async def get_visible_to_active(self, agent_id: UUID, user_id: UUID) -> AgentRecord | None:
        """``get_visible`` for a user known only by id, who must exist and be active: one
        statement instead of a user read and an agent read."""
        u, a = users.c, agents.c
        query = (
            select(agents)
            .join(users, u.id == user_id)
            .where(
                a.id == agent_id,
                a.deleted_at.is_(None),
                u.is_active == true(),
                or_(u.role == "admin", a.user_id == u.id, a.visibility == "shared"),
            )
        )
        row = (await self.conn.execute(query)).first()
        return _agent(row) if row else None

    async def list_visible(self, user: UserRecord) -> list[AgentRecord]:
        query = select(agents).where(self._visible_to(user)).order_by(agents.c.created_at.desc())
        return [_agent(r) for r in await self.conn.execute(query)]

    async def create(self, *, user_id: UUID, values: dict[str, Any], now: datetime) -> AgentRecord:
        row = {"id": uuid.uuid4(), "user_id": user_id, "created_at": now, **values}
        await self.conn.execute(insert(agents).values(row))
        result = await self.conn.execute(select(agents).where(agents.c.id == row["id"]))
        return _agent(result.one())

    async def update(self, agent_id: UUID, *, values: dict[str, Any], now: datetime) -> None:
        await self.conn.execute(
            update(agents).where(agents.c.id == agent_id).values(**values, updated_at=now)
        )

    async def soft_delete(self, agent_id: UUID, *, now: datetime) -> None:
        await self.conn.execute(
            update(agents).where(agents.c.id == agent_id).values(deleted_at=now, updated_at=now)
        )


class ConversationRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def get(
        self, conversation_id: UUID, user: UserRecord, *, include_all: bool = False
    ) -> ConversationRecord | None:
        """The conversation if ``user`` owns it (or ``include_all`` for an admin's audit read)."""
        query = select(conversations).where(conversations.c.id == conversation_id)
        if not (include_all and user.is_admin):
            query = query.where(conversations.c.user_id == user.id)
        row = (await self.conn.execute(query)).first()
        return _conversation(row) if row else None

    async def get_with_agent(
        self, conversation_id: UUID, user_id: UUID
    ) -> tuple[ConversationRecord, AgentRecord] | None:
        """The owner's conversation and its agent in one round trip (the turn's read); None
        also when the owner is gone or deactivated, so the turn needs no separate user read."""
        agent_cols = [c.label(f"a_{c.name}") for c in agents.c]
        query = (
            select(conversations, *agent_cols)
            .join(agents, agents.c.id == conversations.c.agent_id)
            .join(users, users.c.id == conversations.c.user_id)
            .where(
                conversations.c.id == conversation_id,
                conversations.c.user_id == user_id,
                users.c.is_active == true(),
            )
        )
        row = (await self.conn.execute(query)).first()
        if row is None:
            return None
        m = row._mapping
        agent = AgentRecord(
            id=m["a_id"],
            user_id=m["a_user_id"],
            name=m["a_name"],
            description=m["a_description"],
            instructions=m["a_instructions"],
            model=m["a_model"],
            model_settings=m["a_model_settings"] or {},
            tools=m["a_tools"] or [],
            visibility=m["a_visibility"],
            created_at=m["a_created_at"],
            updated_at=m["a_updated_at"],
            deleted_at=m["a_deleted_at"],
        )
        return _conversation(row), agent

    async def list(
        self,
        user: UserRecord,
        *,
        limit: int,
        after: tuple[datetime, UUID] | None = None,
        agent_id: UUID | None = None,
        status: str | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
    ) -> list[ConversationRecord]:
        c = conversations.c
        query = select(conversations).where(c.user_id == user.id)
        if agent_id is not None:
            query = query.where(c.agent_id == agent_id)
        if status is not None:
            query = query.where(c.status == status)
        if created_after is not None:
            query = query.where(c.created_at >= created_after)
        if created_before is not None:
            query = query.where(c.created_at < created_before)
        if after is not None:
            at, last_id = after
            query = query.where(
                or_(c.last_message_at < at, and_(c.last_message_at == at, c.id < last_id))
            )
        query = query.order_by(c.last_message_at.desc(), c.id.desc()).limit(limit)
        return [_conversation(r) for r in await self.conn.execute(query)]

    async def create(self, values: dict[str, Any]) -> None:
        await self.conn.execute(insert(conversations).values(values))

    async def apply_turn(
        self,
        conversation_id: UUID,
        *,
        new_messages: int,
        tokens: int,
        cost: Decimal,
        response_time: Decimal,
        agent_runs: int,
        now: datetime,
        error: str | None,
    ) -> tuple[int, int, Decimal, Decimal, int] | None:
        """Take the next ``new_messages`` seqs and add the turn's counters, atomically.

        Returns (message_count, total_tokens, total_cost, total_response_time, agent_runs) after
        the update; the turn's seqs are ``message_count - new_messages + 1 .. message_count``.
        """
        c = conversations.c
        statement = (
            update(conversations)
            .where(c.id == conversation_id)
            .values(
                message_count=c.message_count + new_messages,
                total_tokens=c.total_tokens + tokens,
                total_cost=c.total_cost + cost,
                total_response_time=c.total_response_time + response_time,
                agent_runs=c.agent_runs + agent_runs,
                last_message_at=now,
                updated_at=now,
                last_error=error,
            )
            .returning(
                c.message_count, c.total_tokens, c.total_cost, c.total_response_time, c.agent_runs
            )
        )
        row = (await self.conn.execute(statement)).first()
        if row is None:
            return None
        return (row[0], row[1], Decimal(row[2]), Decimal(row[3]), row[4])

    async def update_fields(self, conversation_id: UUID, values: dict[str, Any]) -> None:
        await self.conn.execute(
            update(conversations).where(conversations.c.id == conversation_id).values(**values)
        )

    async def delete(self, conversation_id: UUID) -> None:
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


class MessageRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def insert_many(self, records: Sequence[MessageRecord]) -> None:
        await self.conn.execute(
            insert(messages),
            [
                {
                    "id": r.id,
                    "conversation_id": r.conversation_id,
                    "seq": r.seq,
                    "user_id": r.user_id,
                    "agent_id": r.agent_id,
                    "content": r.content,
                    "message_type": r.message_type,
                    "message_metadata": r.metadata,
                    "created_at": r.created_at,
                    "is_edited": False,
                }
                for r in records
            ],
        )

    async def page(
        self, conversation_id: UUID, *, before_seq: int | None, limit: int
    ) -> list[MessageRecord]:
        """Up to ``limit`` messages before ``before_seq``, oldest first."""
        m = messages.c
        query = select(messages).where(m.conversation_id == conversation_id)
        if before_seq is not None:
            query = query.where(m.seq < before_seq)
        query = query.order_by(m.seq.desc()).limit(limit)
        rows = [_message(r) for r in await self.conn.execute(query)]
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
        rows = [_message(r) for r in await self.conn.execute(query)]
        rows.reverse()
        return rows

    async def after(
        self, conversation_id: UUID, *, after_seq: int, limit: int
    ) -> list[MessageRecord]:
        m = messages.c
        query = (
            select(messages)
            .where(m.conversation_id == conversation_id, m.seq > after_seq)
            .order_by(m.seq)
            .limit(limit)
        )
        return [_message(r) for r in await self.conn.execute(query)]


class AuditRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def record(
        self,
        *,
        action: str,
        actor_id: UUID | None,
        now: datetime,
        target_type: str | None = None,
        target_id: str | None = None,
        details: dict[str, Any] | None = None,
        client_ip: str | None = None,
    ) -> None:
        await self.conn.execute(
            insert(audit_log).values(
                id=uuid.uuid4(),
                actor_id=actor_id,
                action=action,
                target_type=target_type,
                target_id=target_id,
                details=details,
                client_ip=client_ip,
                created_at=now,
            )
        )


# Dialects that can claim rows past other workers' locks; elsewhere (SQLite) one relay runs.
SKIP_LOCKED_DIALECTS = frozenset({"postgresql", "mssql", "oracle", "mysql", "mariadb"})


class SyncRepository:
    """What the relay and the reconciler read and move in SQL."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    @property
    def can_skip_locked(self) -> bool:
        return self.conn.dialect.name in SKIP_LOCKED_DIALECTS

    async def unsynced(
        self, *, idle_before: datetime, limit: int, claim: bool
    ) -> list[ConversationRecord]:
        """Conversations that owe MongoDB messages and had no turn since ``idle_before``, oldest
        activity first. ``claim`` locks them for this transaction, skipping rows another relay
        (or a turn) holds: ``FOR UPDATE SKIP LOCKED``, or ``UPDLOCK, READPAST`` on SQL Server
        (SQLAlchemy renders no FOR UPDATE there, so the hint is given explicitly)."""
        c = conversations.c
        query = (
            select(conversations)
            .where(c.synced_seq < c.message_count, c.last_message_at < idle_before)
            .order_by(c.last_message_at)
            .limit(limit)
        )
        if claim:
            query = query.with_for_update(skip_locked=True).with_hint(
                conversations, "WITH (UPDLOCK, READPAST, ROWLOCK)", dialect_name="mssql"
            )
        return [_conversation(r) for r in await self.conn.execute(query)]

    async def advance(self, conversation_id: UUID, *, to_seq: int) -> bool:
        """Record that MongoDB holds every message up to ``to_seq``. Only ever moves forward:
        a compare-and-set against whatever another relay or the acks wrote meanwhile."""
        c = conversations.c
        result = await self.conn.execute(
            update(conversations)
            .where(c.id == conversation_id, c.synced_seq < to_seq, c.message_count >= to_seq)
            .values(synced_seq=to_seq)
        )
        return _rowcount(result) > 0

    async def oldest_unsynced(self) -> tuple[datetime | None, int]:
        """When the oldest message MongoDB does not have yet was written, and how many
        conversations owe messages."""
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
        return oldest, int(row[1])

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
        return [_conversation(r) for r in await self.conn.execute(query)]

    async def get(self, conversation_id: UUID) -> ConversationRecord | None:
        query = select(conversations).where(conversations.c.id == conversation_id)
        row = (await self.conn.execute(query)).first()
        return _conversation(row) if row else None

    async def existing(self, conversation_ids: Sequence[UUID]) -> set[UUID]:
        if not conversation_ids:
            return set()
        query = select(conversations.c.id).where(conversations.c.id.in_(conversation_ids))
        return {row[0] for row in await self.conn.execute(query)}

    async def message_ids(self, conversation_id: UUID) -> dict[UUID, int]:
        """Every message id of a conversation and its seq."""
        m = messages.c
        query = select(m.id, m.seq).where(m.conversation_id == conversation_id)
        return {row[0]: row[1] for row in await self.conn.execute(query)}

    async def messages_by_id(self, ids: Sequence[UUID]) -> list[MessageRecord]:
        if not ids:
            return []
        query = select(messages).where(messages.c.id.in_(ids)).order_by(messages.c.seq)
        return [_message(r) for r in await self.conn.execute(query)]


def _rowcount(result: Any) -> int:
    return int(result.rowcount) if isinstance(result, CursorResult) else 0


@dataclass(frozen=True, slots=True)
class StoredKey:
    fingerprint: str
    status: str
    token: UUID
    locked_until: datetime | None
    response_status: int | None
    response_body: str | None
    owner_id: UUID | None = None


class IdempotencyRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def insert_pending(
        self,
        *,
        user_id: UUID,
        key: str,
        fingerprint: str,
        token: UUID,
        now: datetime,
        locked_until: datetime,
        owner_id: UUID | None = None,
    ) -> None:
        """Raises IntegrityError when the key exists: run it in a transaction of its own."""
        await self.conn.execute(
            insert(idempotency_keys).values(
                user_id=user_id,
                key=key,
                fingerprint=fingerprint,
                status="pending",
                token=token,
                locked_until=locked_until,
                created_at=now,
                owner_id=owner_id,
            )
        )

    async def get(self, *, user_id: UUID, key: str) -> StoredKey | None:
        k = idempotency_keys.c
        row = (
            await self.conn.execute(
                select(
                    k.fingerprint,
                    k.status,
                    k.token,
                    k.locked_until,
                    k.response_status,
                    k.response_body,
                    k.owner_id,
                ).where(k.user_id == user_id, k.key == key)
            )
        ).first()
        return StoredKey(*row) if row else None

    async def take_over(
        self,
        *,
        user_id: UUID,
        key: str,
        old_token: UUID,
        token: UUID,
        locked_until: datetime,
        owner_id: UUID | None = None,
    ) -> bool:
        """Take a pending key whose owner died (lease run out, or owner known gone), fenced by
        the old token."""
        k = idempotency_keys.c
        result = await self.conn.execute(
            update(idempotency_keys)
            .where(k.user_id == user_id, k.key == key, k.token == old_token, k.status == "pending")
            .values(token=token, locked_until=locked_until, owner_id=owner_id)
        )
        return _rowcount(result) > 0

    async def complete(
        self,
        *,
        user_id: UUID,
        key: str,
        token: UUID,
        status: int,
        body: str,
        conversation_id: UUID | None,
        now: datetime,
    ) -> bool:
        """Store the response; False when this owner lost the key (the caller must roll back)."""
        k = idempotency_keys.c
        result = await self.conn.execute(
            update(idempotency_keys)
            .where(k.user_id == user_id, k.key == key, k.token == token, k.status == "pending")
            .values(
                status="complete",
                response_status=status,
                response_body=body,
                conversation_id=conversation_id,
                completed_at=now,
                locked_until=None,
            )
        )
        return _rowcount(result) > 0

    async def release(self, *, user_id: UUID, key: str, token: UUID) -> None:
        k = idempotency_keys.c
        await self.conn.execute(
            delete(idempotency_keys).where(
                k.user_id == user_id, k.key == key, k.token == token, k.status == "pending"
            )
        )

    async def purge(self, *, created_before: datetime, now: datetime) -> int:
        """Drop keys older than the retention, except a pending one still under its lease."""
        k = idempotency_keys.c
        result = await self.conn.execute(
            delete(idempotency_keys).where(
                k.created_at < created_before,
                or_(k.status == "complete", k.locked_until < now, k.locked_until.is_(None)),
            )
        )
        return _rowcount(result)
