"""This server process, as other servers see it: a ``server_instances`` row and a heartbeat.

The heartbeat is a small SQL write every ``heartbeat_seconds``; it doubles as readiness's SQL
write probe (its last error is reported). An Idempotency-Key records the instance that holds it,
and a retry takes the key over at once when that instance is known to be gone:

- it stopped cleanly (``stopped_at`` set), or its row is gone;
- its heartbeat is older than ``dead_after`` (any host: the check is a row in the shared SQL
  database);
- it ran on this host (same hostname and kernel boot id) and its pid is no longer alive, or
  it ran on this host before a reboot (other boot id). A pid reused meanwhile (pid 1 in a
  restarted container) looks alive; the heartbeat rule frees its keys after ``dead_after``.

Anything else (a live owner, or one that may just be slow) keeps the lease; the token fencing
protects a slow owner's late commit either way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from employeevirtual.stores.sql.engine import Connection, write_transaction
from employeevirtual.stores.sql.instances import (
    InstanceReader,
    InstanceRecord,
    InstanceRepository,
)
from employeevirtual.tasks import raise_if_cancelling, stop_task

__all__ = ["ServerInstance", "boot_id", "pid_alive"]

log = logging.getLogger(__name__)

PURGE_AFTER = timedelta(days=1)


def boot_id() -> str:
    """The kernel's id for this boot (Linux); elsewhere the hostname alone identifies a host."""
    with contextlib.suppress(OSError):
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()[:64]
    return "unknown"


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


class ServerInstance:
    def __init__(
        self, engine: AsyncEngine, *, heartbeat_seconds: float = 5.0, dead_after: float = 20.0
    ) -> None:
        self.engine = engine
        self.id = uuid.uuid4()
        self.hostname = socket.gethostname()[:255]
        self.pid = os.getpid()
        self.boot_id = boot_id()
        self.heartbeat_seconds = heartbeat_seconds
        self.dead_after = timedelta(seconds=dead_after)
        self.registered = False
        self.last_write_error: str | None = None
        self._task: asyncio.Task[None] | None = None

    # -- this server ----------------------------------------------------------------------------

    async def register(self) -> None:
        """Best effort: a server that cannot write SQL at start still serves (degraded); its
        keys then carry an owner other servers cannot judge, and keep the lease semantics."""
        now = datetime.now(UTC)
        try:
            async with write_transaction(self.engine) as conn:
                repo = InstanceRepository(conn)
                await self._join(repo, now)
                await repo.purge(heartbeat_before=now - PURGE_AFTER)
            self.registered = True
        except (SQLAlchemyError, OSError) as exc:
            self._failed(exc)

    async def beat(self) -> bool:
        """One heartbeat (the SQL write probe). False, with ``last_write_error`` set, on failure."""
        now = datetime.now(UTC)
        try:
            async with write_transaction(self.engine) as conn:
                repo = InstanceRepository(conn)
                if self.registered and not await repo.heartbeat(self.id, now=now):
                    self.registered = False  # purged while this server stalled: join again
                if not self.registered:
                    await self._join(repo, now)
            self.registered = True
        except (SQLAlchemyError, OSError) as exc:
            self._failed(exc)
            return False
        self.last_write_error = None
        return True

    async def _join(self, repo: InstanceRepository, now: datetime) -> None:
        await repo.register(
            instance_id=self.id, hostname=self.hostname, pid=self.pid, boot_id=self.boot_id, now=now
        )

    def _failed(self, exc: BaseException) -> None:
        self.last_write_error = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
        log.warning("SQL heartbeat write failed: %s", type(exc).__name__)

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_seconds)
            await self.beat()
            raise_if_cancelling()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="instance-heartbeat")

    async def stop(self) -> None:
        """Stop beating and say so: keys this server still held are free at once."""
        task, self._task = self._task, None
        await stop_task(task)
        if self.registered:
            try:
                async with write_transaction(self.engine) as conn:
                    await InstanceRepository(conn).stopped(self.id, now=datetime.now(UTC))
            except (SQLAlchemyError, OSError) as exc:
                log.warning("could not record this server's stop: %s", type(exc).__name__)

    # -- other servers --------------------------------------------------------------------------

    async def is_gone(self, owner_id: UUID, conn: Connection) -> bool:
        """Whether the instance ``owner_id`` is known to be gone (see the module's doc), read on
        the caller's open connection: a second one taken from the pool while it holds one can
        empty a small pool for good (ten callers at once on a pool of ten)."""
        if owner_id == self.id:
            return False
        owner = await InstanceReader(conn).get(owner_id)
        return self.judge(owner, now=datetime.now(UTC))

    def judge(self, owner: InstanceRecord | None, *, now: datetime) -> bool:
        if owner is None or owner.stopped_at is not None:
            return True
        if owner.heartbeat_at < now - self.dead_after:
            return True
        if owner.hostname != self.hostname:
            return False  # another host, beating: alive as far as anyone here can tell
        if owner.boot_id != self.boot_id:
            return owner.boot_id != "unknown"  # this host rebooted since
        # same host and boot: the process table knows (a pid reused meanwhile, as pid 1 in a
        # restarted container, looks alive: the heartbeat rule above covers it)
        return owner.pid != self.pid and not pid_alive(owner.pid)
