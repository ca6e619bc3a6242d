"""``empl.erasure_jobs``: a person's erasure, step by step, and what it removes or scrubs; a
finished job is the tombstone (the subject's id gone). Never commits: the service decides the
transactions."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from sqlalchemy import String, and_, cast, delete, exists, func, insert, or_, select, true, update

from employeevirtual.stores.sql.engine import Connection, WriteConnection
from employeevirtual.stores.sql.fulltext import SQLITE_INDEXES
from employeevirtual.stores.sql.rows import rowcount
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
    users,
)

__all__ = ["ErasureJob", "ErasureReader", "ErasureRepository", "ErasureStatus", "SharedAgents"]

ErasureStatus = Literal["pending", "running", "done"]
# what happens to the person's shared agents (or agents others' conversations use)
SharedAgents = Literal["transfer", "delete"]


@dataclass(frozen=True, slots=True)
class ErasureJob:
    id: UUID
    user_id: UUID | None
    requested_by: str
    actor_id: UUID | None
    shared_agents: SharedAgents
    heir_id: UUID | None
    status: ErasureStatus
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
        shared_agents: SharedAgents,
        heir_id: UUID | None,
        step: str,
        now: datetime,
    ) -> ErasureJob:
        statement = (
            insert(erasure_jobs)
            .values(
                id=uuid.uuid4(),
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
            .returning(erasure_jobs)
        )
        return _erasure((await self.conn.execute(statement)).one())

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
        return rowcount(result) > 0

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
        count += rowcount(result)
        result = await self.conn.execute(
            update(audit_log)
            .where(a.actor_id == user_id)
            .values(actor_id=None, client_ip=None, details=marker)
        )
        count += rowcount(result)
        result = await self.conn.execute(
            update(audit_log).where(a.target_id == uid).values(target_id=str(tombstone))
        )
        return count + rowcount(result)

    async def compact_text_index(self) -> None:
        """SQLite's FTS5 records a deletion as a marker in a new segment; the deleted words stay
        in the older segments until they are merged. 'optimize' merges everything, so no word
        of an erased person survives in the index (its cost grows with the index)."""
        if self.conn.dialect.name == "sqlite":
            for fts, _table, _column in SQLITE_INDEXES:
                await self.conn.exec_driver_sql(f"INSERT INTO {fts}({fts}) VALUES ('optimize')")
