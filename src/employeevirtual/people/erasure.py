"""Erasure (GDPR art. 17, LGPD art. 18): the person leaves every store.

A request deactivates the account and records a job in the same transaction, so from that
commit on the account cannot log in and its tokens and API keys are refused. The job then runs
in steps, each idempotent and recorded as it completes; a worker that dies mid-way leaves the
job ``running`` with a stale ``updated_at``, and any worker (the same server restarted, or
another) takes it over after ``lease_seconds`` and resumes at the recorded step.

Steps: ``conversations`` (each through the same path as a user's delete) -> ``agents`` (shared
ones handed to an admin or deleted; ones other people's conversations point at emptied and
soft-deleted) -> ``documents`` (this server's batched analytics documents flushed first:
``flush_documents``; then every registered source: MongoDB collections, later knowledge and the
like; export files) -> ``caches`` (Redis/in-process limiter keys, live turns'
event streams) -> ``account``
(API keys, idempotency keys, export jobs, the user row, audit rows scrubbed; the job becomes
the tombstone), all in that last transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncEngine

from employeevirtual.chat.conversations import ConversationService
from employeevirtual.errors import Conflict, InvalidInput, NotFound
from employeevirtual.people.registry import PersonalDataRegistry
from employeevirtual.security.login_throttle import account_prefix
from employeevirtual.security.passwords import verify_password
from employeevirtual.security.ratelimit import RateLimiter
from employeevirtual.stores.records import UserRecord
from employeevirtual.stores.sql.audit import AuditRepository
from employeevirtual.stores.sql.engine import read_connection, write_transaction
from employeevirtual.stores.sql.erasure_jobs import (
    ErasureJob,
    ErasureReader,
    ErasureRepository,
    SharedAgents,
)
from employeevirtual.stores.sql.export_jobs import ExportReader
from employeevirtual.stores.sql.users import UserChanges, UserReader, UserRepository
from employeevirtual.tasks import Background, run_rounds

__all__ = ["STEPS", "ErasureService"]

log = logging.getLogger(__name__)

STEPS = ("conversations", "agents", "documents", "caches", "account")
Clock = Callable[[], datetime]


def _utcnow() -> datetime:
    return datetime.now(UTC)


class ErasureService:
    def __init__(
        self,
        *,
        engine: AsyncEngine,
        conversations: ConversationService,
        registry: PersonalDataRegistry,
        limiter: RateLimiter,
        export_dir: Path,
        forget_conversation: Callable[[UUID], None] = lambda _cid: None,
        forget_owner: Sequence[Callable[[UUID], Awaitable[object]]] = (),
        flush_documents: Callable[[], Awaitable[object]] | None = None,
        lease_seconds: float = 60.0,
        interval_seconds: float = 5.0,
        crash_after_step: str | None = None,
        clock: Clock = _utcnow,
    ) -> None:
        self.engine = engine
        self.conversations = conversations
        self.registry = registry
        self.limiter = limiter
        self.export_dir = export_dir
        self.forget_conversation = forget_conversation
        self.forget_owner = forget_owner
        self.flush_documents = flush_documents
        self.lease = timedelta(seconds=lease_seconds)
        self.interval = interval_seconds
        self.crash_after_step = crash_after_step
        self.clock = clock
        self._background = Background("erasure")
        self._wake = asyncio.Event()

    # -- requests ------------------------------------------------------------------------------

    async def request_self(
        self, user: UserRecord, *, password: str, shared_agents: SharedAgents, client_ip: str | None
    ) -> ErasureJob:
        """The caller erases their own account, confirming with their password."""
        if not verify_password(password, user.password_hash or None):
            raise InvalidInput("the password does not match; erasure needs the account's password")
        return await self._request(
            user.id, actor=None, shared_agents=shared_agents, client_ip=client_ip
        )

    async def request_admin(
        self,
        admin: UserRecord,
        user_id: UUID,
        *,
        shared_agents: SharedAgents,
        client_ip: str | None,
    ) -> ErasureJob:
        if user_id == admin.id:
            raise Conflict("erase your own account with DELETE /api/users/me")
        return await self._request(
            user_id, actor=admin, shared_agents=shared_agents, client_ip=client_ip
        )

    async def _request(
        self,
        user_id: UUID,
        *,
        actor: UserRecord | None,
        shared_agents: SharedAgents,
        client_ip: str | None,
    ) -> ErasureJob:
        now = self.clock()
        async with write_transaction(self.engine) as conn:
            users, jobs = UserRepository(conn), ErasureRepository(conn)
            target = await users.get(user_id)
            if target is None:
                raise NotFound(f"user {user_id} not found")
            open_job = await jobs.open_for(user_id)
            if open_job is not None:
                return open_job
            heir = actor.id if actor is not None else await jobs.heir(excluding=user_id)
            if target.is_admin and await jobs.heir(excluding=user_id) is None:
                raise Conflict("this is the only admin account; make another user an admin first")
            if heir is None and await jobs.needs_heir(user_id):
                raise Conflict(
                    "shared agents or agents in other people's conversations need an admin to "
                    "receive them, and there is none; make another user an admin first"
                )
            job = await jobs.create(
                user_id=user_id,
                requested_by="self" if actor is None else "admin",
                actor_id=actor.id if actor is not None else None,
                shared_agents=shared_agents,
                heir_id=heir,
                step=STEPS[0],
                now=now,
            )
            # from this commit on the account cannot log in, nor use its tokens or API keys
            await users.update(user_id, UserChanges(is_active=False), now=now)
            await AuditRepository(conn).record(
                action="user.erasure_requested",
                actor_id=actor.id if actor is not None else user_id,
                target_type="user",
                target_id=str(user_id),
                details={"erasure_id": str(job.id), "shared_agents": shared_agents},
                client_ip=client_ip,
                now=now,
            )
        self._wake.set()
        return job

    async def get(self, job_id: UUID) -> ErasureJob:
        async with read_connection(self.engine) as conn:
            job = await ErasureReader(conn).get(job_id)
        if job is None:
            raise NotFound(f"erasure {job_id} not found")
        return job

    # -- the worker ----------------------------------------------------------------------------

    def start(self) -> None:
        self._background.start(self._loop)

    async def stop(self) -> None:
        await self._background.stop()

    async def _loop(self) -> None:
        await run_rounds(self.run_pending, wake=self._wake, interval=self.interval, what="erasure")

    async def run_pending(self) -> int:
        """Run every job that is pending or whose worker died; the number finished."""
        now = self.clock()
        async with read_connection(self.engine) as conn:
            ids = await ErasureReader(conn).claimable(stale_before=now - self.lease, limit=10)
        finished = 0
        for job_id in ids:
            async with write_transaction(self.engine) as conn:
                claimed = await ErasureRepository(conn).claim(
                    job_id, stale_before=self.clock() - self.lease, now=self.clock()
                )
            if claimed:
                await self.run(job_id)
                finished += 1
        return finished

    async def run(self, job_id: UUID) -> None:
        job = await self.get(job_id)
        if job.status == "done" or job.user_id is None:
            return
        for step in STEPS[STEPS.index(job.step) :]:
            await getattr(self, f"_{step}")(job)
            if step != STEPS[-1]:
                async with write_transaction(self.engine) as conn:
                    following = STEPS[STEPS.index(step) + 1]
                    await ErasureRepository(conn).advance(job.id, step=following, now=self.clock())
            if self.crash_after_step == step:  # TEST ONLY: die like a killed process
                log.error("EV_FAULT_CRASH_ERASURE_AFTER_STEP=%s: exiting", step)
                os._exit(137)
        log.info("erasure %s finished", job.id)

    async def _heartbeat(self, job: ErasureJob) -> None:
        async with write_transaction(self.engine) as conn:
            await ErasureRepository(conn).advance(job.id, step=job.step, now=self.clock())

    async def _conversations(self, job: ErasureJob) -> None:
        assert job.user_id is not None
        while True:
            async with read_connection(self.engine) as conn:
                batch = await ErasureReader(conn).conversation_ids(job.user_id, limit=50)
            if not batch:
                return
            for conversation_id in batch:
                await self.conversations.purge(
                    conversation_id, actor_id=job.actor_id, reason="erasure", now=self.clock()
                )
                self.forget_conversation(conversation_id)
            await self._heartbeat(job)

    async def _agents(self, job: ErasureJob) -> None:
        assert job.user_id is not None
        now = self.clock()
        async with write_transaction(self.engine) as conn:
            repo = ErasureRepository(conn)
            doomed: list[UUID] = []
            for agent_id, visibility, live, used in await repo.agents_of(job.user_id):
                keep = live and visibility == "shared" and job.shared_agents == "transfer"
                if keep and job.heir_id is not None:
                    await repo.transfer_agent(agent_id, to=job.heir_id, now=now)
                elif used and job.heir_id is not None:
                    await repo.retire_agent(agent_id, to=job.heir_id, now=now)
                else:
                    doomed.append(agent_id)
            await repo.delete_agents(doomed)

    async def _documents(self, job: ErasureJob) -> None:
        assert job.user_id is not None
        if self.flush_documents is not None:
            # this server's batched chat_analytics documents (``SyncAcks``), before the
            # collections are erased: a flush running now finishes first, and the person's
            # documents still buffered are dropped (their conversations are gone, their account
            # deactivated), so none lands after the erasure. A turn's own MongoDB write still
            # in flight (committed in SQL before the purge) may land after this step, even
            # after the job is done: the next flush of its server takes it back
            # (``SyncAcks._take_back_gone``), its conversation being gone from SQL, with a
            # first turn's ``conversation_created`` activity. A first turn committing after
            # the deactivation is refused (``commit.store_messages``): no conversation of the
            # person is created after the ``conversations`` step
            await self.flush_documents()
        for source in self.registry:
            await source.erase(job.user_id)
        await self._delete_export_files(job.user_id)

    async def _delete_export_files(self, user_id: UUID) -> None:
        async with read_connection(self.engine) as conn:
            exports = await ExportReader(conn).for_user(user_id)
        for export in exports:
            with contextlib.suppress(FileNotFoundError):
                (self.export_dir / f"{export.id}.zip").unlink()
            with contextlib.suppress(FileNotFoundError):
                (self.export_dir / f"{export.id}.zip.part").unlink()

    async def _caches(self, job: ErasureJob) -> None:
        assert job.user_id is not None
        async with read_connection(self.engine) as conn:
            user = await UserReader(conn).get(job.user_id)
        for key in (f"chat:user:{job.user_id}", f"turns:{job.user_id}"):
            await self.limiter.reset(key)
        if user is not None:  # failed-login counters, one per (account, address) pair
            await self.limiter.reset_prefix(account_prefix(user.email))
        for forget in self.forget_owner:  # e.g. the live turns' event streams
            await forget(job.user_id)

    async def _account(self, job: ErasureJob) -> None:
        assert job.user_id is not None
        await self._delete_export_files(job.user_id)  # one built while the job ran
        now = self.clock()
        async with write_transaction(self.engine) as conn:
            repo = ErasureRepository(conn)
            await repo.delete_account(job.user_id)
            await repo.scrub_audit(job.user_id, tombstone=job.id)
            await repo.compact_text_index()
            await repo.finish(job.id, now=now)
            await AuditRepository(conn).record(
                action="user.erased",
                actor_id=job.actor_id,
                target_type="erasure",
                target_id=str(job.id),
                details={"requested_by": job.requested_by, "attempts": job.attempts},
                now=now,
            )
