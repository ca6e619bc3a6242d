"""People's data in SQL: export jobs, erasure jobs (tombstones), what an erasure removes or
scrubs, and reading the audit trail. Never commits: the service decides the transactions."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import (
    String,
    and_,
    cast,
    delete,
    exists,
    func,
    insert,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.engine import CursorResult

from employeevirtual.stores.sql.engine import Connection, WriteConnection
from employeevirtual.stores.sql.fulltext import SQLITE_INDEXES
from employeevirtual.stores.sql.tables import (
    agents,
    api_keys,
    audit_log,
    budgets,
    conversations,
    erasure_jobs,
    export_jobs,
    idempotency_keys,
    knowledge_bases,
    knowledge_documents,
    message_feedback,
    messages,
    users,
)

__all__ = [
    "AuditEntry",
    "AuditFilter",
    "AuditTrailReader",
    "AuditTrailRepository",
    "ErasureJob",
    "ErasureReader",
    "ErasureRepository",
    "ExportJob",
    "ExportReader",
    "ExportRepository",
    "PersonRowsReader",
    "RetentionReader",
]


def _rowcount(result: Any) -> int:
    return int(result.rowcount) if isinstance(result, CursorResult) else 0


# -- export jobs -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ExportJob:
    id: UUID
    user_id: UUID
    requested_by: UUID | None
    status: str
    created_at: datetime
    completed_at: datetime | None
    expires_at: datetime | None
    size_bytes: int | None
    error: str | None


def _export(row: Any) -> ExportJob:
    m = row._mapping
    return ExportJob(**{k: m[k] for k in ExportJob.__slots__})


class ExportReader:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    async def get(self, job_id: UUID) -> ExportJob | None:
        query = select(export_jobs).where(export_jobs.c.id == job_id)
        row = (await self.conn.execute(query)).first()
        return _export(row) if row else None

    async def latest_for(self, user_id: UUID) -> ExportJob | None:
        e = export_jobs.c
        query = select(export_jobs).where(e.user_id == user_id).order_by(e.created_at.desc())
        row = (await self.conn.execute(query.limit(1))).first()
        return _export(row) if row else None

    async def unfinished(self, *, limit: int) -> list[ExportJob]:
        e = export_jobs.c
        query = select(export_jobs).where(e.status.in_(("pending", "running")))
        rows = await self.conn.execute(query.order_by(e.created_at).limit(limit))
        return [_export(r) for r in rows]

    async def expired(self, *, now: datetime, limit: int) -> list[ExportJob]:
        e = export_jobs.c
        query = select(export_jobs).where(e.status == "ready", e.expires_at < now).limit(limit)
        return [_export(r) for r in await self.conn.execute(query)]

    async def for_user(self, user_id: UUID) -> list[ExportJob]:
        query = select(export_jobs).where(export_jobs.c.user_id == user_id)
        return [_export(r) for r in await self.conn.execute(query)]


class ExportRepository(ExportReader):
    def __init__(self, conn: WriteConnection) -> None:
        self.conn = conn

    async def create(self, *, user_id: UUID, requested_by: UUID, now: datetime) -> ExportJob:
        job_id = uuid.uuid4()
        await self.conn.execute(
            insert(export_jobs).values(
                id=job_id,
                user_id=user_id,
                requested_by=requested_by,
                status="pending",
                created_at=now,
            )
        )
        found = await self.get(job_id)
        assert found is not None
        return found

    async def claim(self, job_id: UUID, *, take_stale: bool = False) -> bool:
        """Pending -> running (compare-and-set); ``take_stale`` also takes a running one whose
        builder died."""
        e = export_jobs.c
        states = ("pending", "running") if take_stale else ("pending",)
        result = await self.conn.execute(
            update(export_jobs).where(e.id == job_id, e.status.in_(states)).values(status="running")
        )
        return _rowcount(result) > 0

    async def finish(
        self,
        job_id: UUID,
        *,
        status: str,
        now: datetime,
        expires_at: datetime | None = None,
        size_bytes: int | None = None,
        error: str | None = None,
    ) -> None:
        await self.conn.execute(
            update(export_jobs)
            .where(export_jobs.c.id == job_id)
            .values(
                status=status,
                completed_at=now,
                expires_at=expires_at,
                size_bytes=size_bytes,
                error=error,
            )
        )


# -- erasure jobs ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ErasureJob:
    id: UUID
    user_id: UUID | None
    requested_by: str
    actor_id: UUID | None
    shared_agents: str
    heir_id: UUID | None
    status: str
    step: str
    attempts: int
    created_at: datetime
    updated_at: datetime | None
    completed_at: datetime | None


def _erasure(row: Any) -> ErasureJob:
    m = row._mapping
    return ErasureJob(**{k: m[k] for k in ErasureJob.__slots__})


class ErasureReader:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    async def get(self, job_id: UUID) -> ErasureJob | None:
        row = (
            await self.conn.execute(select(erasure_jobs).where(erasure_jobs.c.id == job_id))
        ).first()
        return _erasure(row) if row else None

    async def open_for(self, user_id: UUID) -> ErasureJob | None:
        j = erasure_jobs.c
        query = select(erasure_jobs).where(j.user_id == user_id, j.status != "done")
        row = (await self.conn.execute(query)).first()
        return _erasure(row) if row else None

    async def claimable(self, *, stale_before: datetime, limit: int) -> list[UUID]:
        """Pending jobs, and running ones whose worker stopped reporting (it died)."""
        j = erasure_jobs.c
        query = (
            select(j.id)
            .where(
                or_(j.status == "pending", and_(j.status == "running", j.updated_at < stale_before))
            )
            .order_by(j.created_at)
            .limit(limit)
        )
        return [row[0] for row in await self.conn.execute(query)]

    async def conversation_ids(self, user_id: UUID, *, limit: int) -> list[UUID]:
        query = select(conversations.c.id).where(conversations.c.user_id == user_id).limit(limit)
        return [row[0] for row in await self.conn.execute(query)]

    async def knowledge_base_ids(self, user_id: UUID) -> list[UUID]:
        query = select(knowledge_bases.c.id).where(knowledge_bases.c.user_id == user_id)
        return [row[0] for row in await self.conn.execute(query)]

    async def agents_of(self, user_id: UUID) -> list[tuple[UUID, str, bool, bool]]:
        """(id, visibility, live, used by someone else's conversations) per agent."""
        a, c = agents.c, conversations.c
        used = exists().where(c.agent_id == a.id, c.user_id != user_id)
        query = select(a.id, a.visibility, a.deleted_at.is_(None), used).where(a.user_id == user_id)
        return [(r[0], r[1], bool(r[2]), bool(r[3])) for r in await self.conn.execute(query)]

    async def heir(self, *, excluding: UUID) -> UUID | None:
        """The admin who receives what must be kept: the oldest other active admin."""
        u = users.c
        query = (
            select(u.id)
            .where(u.role == "admin", u.is_active == true(), u.id != excluding)
            .order_by(u.created_at)
            .limit(1)
        )
        row = (await self.conn.execute(query)).first()
        return row[0] if row else None

    async def needs_heir(self, user_id: UUID) -> bool:
        a, c = agents.c, conversations.c
        used = exists().where(c.agent_id == a.id, c.user_id != user_id)
        query = (
            select(func.count())
            .select_from(agents)
            .where(
                a.user_id == user_id,
                or_(used, and_(a.visibility == "shared", a.deleted_at.is_(None))),
            )
        )
        return int((await self.conn.execute(query)).scalar_one()) > 0


class ErasureRepository(ErasureReader):
    def __init__(self, conn: WriteConnection) -> None:
        self.conn = conn

    async def create(
        self,
        *,
        user_id: UUID,
        requested_by: str,
        actor_id: UUID | None,
        shared_agents: str,
        heir_id: UUID | None,
        step: str,
        now: datetime,
    ) -> ErasureJob:
        job_id = uuid.uuid4()
        await self.conn.execute(
            insert(erasure_jobs).values(
                id=job_id,
                user_id=user_id,
                requested_by=requested_by,
                actor_id=actor_id,
                shared_agents=shared_agents,
                heir_id=heir_id,
                status="pending",
                step=step,
                attempts=0,
                created_at=now,
                updated_at=now,
            )
        )
        found = await self.get(job_id)
        assert found is not None
        return found

    async def claim(self, job_id: UUID, *, stale_before: datetime, now: datetime) -> bool:
        """Take a job (compare-and-set, so one worker among many runs it)."""
        j = erasure_jobs.c
        result = await self.conn.execute(
            update(erasure_jobs)
            .where(
                j.id == job_id,
                or_(
                    j.status == "pending", and_(j.status == "running", j.updated_at < stale_before)
                ),
            )
            .values(status="running", attempts=j.attempts + 1, updated_at=now)
        )
        return _rowcount(result) > 0

    async def advance(self, job_id: UUID, *, step: str, now: datetime) -> None:
        await self.conn.execute(
            update(erasure_jobs)
            .where(erasure_jobs.c.id == job_id)
            .values(step=step, updated_at=now)
        )

    async def finish(self, job_id: UUID, *, now: datetime) -> None:
        """The job becomes the tombstone: the subject's id goes."""
        await self.conn.execute(
            update(erasure_jobs)
            .where(erasure_jobs.c.id == job_id)
            .values(status="done", step="done", user_id=None, updated_at=now, completed_at=now)
        )

    # -- what an erasure touches --

    async def transfer_agent(self, agent_id: UUID, *, to: UUID, now: datetime) -> None:
        await self.conn.execute(
            update(agents).where(agents.c.id == agent_id).values(user_id=to, updated_at=now)
        )

    async def retire_agent(self, agent_id: UUID, *, to: UUID, now: datetime) -> None:
        """An agent someone else's past conversations still point at: emptied of the person's
        words, soft-deleted, and held by an admin so the foreign key stands."""
        await self.conn.execute(
            update(agents)
            .where(agents.c.id == agent_id)
            .values(
                user_id=to,
                name="deleted agent",
                description=None,
                instructions="",
                model_settings=None,
                tools=None,
                deleted_at=now,
                updated_at=now,
            )
        )

    async def delete_agents(self, agent_ids: Sequence[UUID]) -> None:
        if agent_ids:
            await self.conn.execute(delete(agents).where(agents.c.id.in_(agent_ids)))

    async def delete_account(self, user_id: UUID) -> None:
        for table in (api_keys, idempotency_keys, export_jobs):
            await self.conn.execute(delete(table).where(table.c.user_id == user_id))
        b, d, k = budgets.c, knowledge_documents.c, knowledge_bases.c
        await self.conn.execute(delete(budgets).where(b.scope == "user", b.scope_id == user_id))
        await self.conn.execute(
            update(budgets).where(b.created_by == user_id).values(created_by=None)
        )
        # documents they put in someone else's base (an admin can) stay with the base's owner
        owner = select(k.user_id).where(k.id == d.base_id).scalar_subquery()
        await self.conn.execute(
            update(knowledge_documents).where(d.user_id == user_id).values(user_id=owner)
        )
        await self.conn.execute(delete(users).where(users.c.id == user_id))

    async def scrub_audit(self, user_id: UUID, *, tombstone: UUID) -> int:
        """Audit rows stay (what happened, when), without the person: their id as actor or
        target becomes the tombstone, their address goes, and any details naming them are
        replaced by a pointer to the tombstone."""
        a = audit_log.c
        uid, marker = str(user_id), {"erased": str(tombstone)}
        count = 0
        # details mentioning the id anywhere (e.g. an admin's read of their conversation)
        mentions = cast(a.details, String).contains(uid)
        result = await self.conn.execute(update(audit_log).where(mentions).values(details=marker))
        count += _rowcount(result)
        result = await self.conn.execute(
            update(audit_log)
            .where(a.actor_id == user_id)
            .values(actor_id=None, client_ip=None, details=marker)
        )
        count += _rowcount(result)
        result = await self.conn.execute(
            update(audit_log).where(a.target_id == uid).values(target_id=str(tombstone))
        )
        return count + _rowcount(result)

    async def compact_text_index(self) -> None:
        """SQLite's FTS5 records a deletion as a marker in a new segment; the deleted words stay
        in the older segments until they are merged. 'optimize' merges everything, so no word
        of an erased person survives in the index (its cost grows with the index)."""
        if self.conn.dialect.name == "sqlite":
            for fts, _table, _column in SQLITE_INDEXES:
                await self.conn.exec_driver_sql(f"INSERT INTO {fts}({fts}) VALUES ('optimize')")


# -- reading the audit trail -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: UUID
    actor_id: UUID | None
    action: str
    target_type: str | None
    target_id: str | None
    details: dict[str, Any] | None
    client_ip: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class AuditFilter:
    actor_id: UUID | None = None
    action: str | None = None
    target_type: str | None = None
    target_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None


class AuditTrailReader:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    async def page(
        self, f: AuditFilter, *, limit: int, after: tuple[datetime, UUID] | None
    ) -> list[AuditEntry]:
        """Newest first, keyset-paged on (created_at, id)."""
        a = audit_log.c
        query = select(audit_log)
        if f.actor_id is not None:
            query = query.where(a.actor_id == f.actor_id)
        if f.action is not None:
            query = query.where(a.action == f.action)
        if f.target_type is not None:
            query = query.where(a.target_type == f.target_type)
        if f.target_id is not None:
            query = query.where(a.target_id == f.target_id)
        if f.since is not None:
            query = query.where(a.created_at >= f.since)
        if f.until is not None:
            query = query.where(a.created_at < f.until)
        if after is not None:
            at, last = after
            query = query.where(or_(a.created_at < at, and_(a.created_at == at, a.id < last)))
        query = query.order_by(a.created_at.desc(), a.id.desc()).limit(limit)
        return [
            AuditEntry(**{k: r._mapping[k] for k in AuditEntry.__slots__})
            for r in await self.conn.execute(query)
        ]


class AuditTrailRepository(AuditTrailReader):
    def __init__(self, conn: WriteConnection) -> None:
        self.conn = conn

    async def purge_before(self, cutoff: datetime, *, batch: int) -> int:
        """Delete up to ``batch`` rows older than ``cutoff`` (one short statement)."""
        a = audit_log.c
        ids = select(a.id).where(a.created_at < cutoff).limit(batch).scalar_subquery()
        result = await self.conn.execute(delete(audit_log).where(a.id.in_(ids)))
        return _rowcount(result)


# -- a person's rows, read out for their export ---------------------------------------------

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
        m = messages.c
        query = (
            select(messages)
            .where(m.conversation_id == conversation_id, m.seq > after_seq)
            .order_by(m.seq)
            .limit(limit)
        )
        return [_plain(r) for r in await self.conn.execute(query)]

    async def audit_about(
        self, user_id: UUID, *, after: tuple[datetime, UUID] | None, limit: int
    ) -> list[dict[str, Any]]:
        a = audit_log.c
        query = select(audit_log).where(or_(a.actor_id == user_id, a.target_id == str(user_id)))
        if after is not None:
            at, last = after
            query = query.where(or_(a.created_at > at, and_(a.created_at == at, a.id > last)))
        query = query.order_by(a.created_at, a.id).limit(limit)
        return [_plain(r) for r in await self.conn.execute(query)]


class RetentionReader:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    async def expired_conversations(
        self,
        *,
        archived_before: datetime | None,
        inactive_before: datetime | None,
        limit: int,
    ) -> list[UUID]:
        """Conversations past their retention: archived and idle since ``archived_before``, or
        idle since ``inactive_before`` whatever their status (last activity, else creation)."""
        c = conversations.c
        idle = func.coalesce(c.last_message_at, c.created_at)
        due = []
        if archived_before is not None:
            due.append(and_(c.status == "archived", idle < archived_before))
        if inactive_before is not None:
            due.append(idle < inactive_before)
        if not due:
            return []
        query = select(c.id).where(or_(*due)).limit(limit)
        return [row[0] for row in await self.conn.execute(query)]
