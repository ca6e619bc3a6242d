"""Supervision of the embedded SecantusDB child: restarted when it exits or stops taking writes.

A child that exits (killed, crashed, out of memory) is logged with its exit code and the tail
of its log, and started again on the same port and files, with a backoff doubling up to
``max_backoff`` while starts keep failing. A child that is up but fails every write (WiredTiger
panics on a full disk and then fails writes while still answering ``ping``) is restarted after
``write_failures`` failed write probes in a row; the backoff applies there too, so a disk that
stays full is not hammered. ``on_restart`` runs after every restart (the server checks the
stores for lost data then: a restarted child may come back with fewer documents).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from employeevirtual.stores.mongo.secantus import SecantusServer
from employeevirtual.tasks import raise_if_cancelling, stop_task

__all__ = ["SecantusSupervisor"]

log = logging.getLogger(__name__)

Probe = Callable[[], Awaitable[None]]


class SecantusSupervisor:
    def __init__(
        self,
        server: SecantusServer,
        *,
        probe: Probe | None = None,
        interval: float = 1.0,
        write_failures: int = 3,
        min_backoff: float = 0.5,
        max_backoff: float = 30.0,
        on_restart: Callable[[], None] | None = None,
    ) -> None:
        self.server = server
        self.probe = probe
        self.interval = interval
        self.write_failures = write_failures
        self.min_backoff = min_backoff
        self.max_backoff = max_backoff
        self.on_restart = on_restart
        self.restarts = 0
        self.last_exit: str | None = None  # "exit code -9 at ...": for readiness
        self.last_write_error: str | None = None
        self._backoff = min_backoff
        self._failed_writes = 0
        self._task: asyncio.Task[None] | None = None

    async def _loop(self) -> None:
        while True:
            raise_if_cancelling()
            if not self.server.running:
                await self._restart(f"exited with code {self.server.returncode}")
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.server.wait(), self.interval)
                continue  # exited: restart on the next pass
            if self.probe is None:
                continue
            try:
                await self.probe()
            except Exception as exc:
                self._failed_writes += 1
                self.last_write_error = f"{type(exc).__name__}: {str(exc)[:200]}"
                if self._failed_writes >= self.write_failures:
                    log.error(
                        "SecantusDB answers but has failed %d writes in a row (%s); restarting it",
                        self._failed_writes,
                        self.last_write_error,
                    )
                    await self.server.stop(timeout=5)
            else:
                self._failed_writes = 0
                self._backoff = self.min_backoff  # healthy again: the next fault starts short

    async def _restart(self, why: str) -> None:
        self.last_exit = f"{why} at {datetime.now(UTC).isoformat(timespec='seconds')}"
        log.error(
            "SecantusDB %s; restarting it in %.1f s. Its log ends with:\n%s",
            why,
            self._backoff,
            self.server.log_tail(1500),
        )
        await asyncio.sleep(self._backoff)
        self._backoff = min(self.max_backoff, self._backoff * 2)
        self._failed_writes = 0
        try:
            await self.server.start()
        except RuntimeError as exc:
            log.error("SecantusDB did not start again: %s", str(exc).splitlines()[0])
            return
        self.restarts += 1
        log.warning("SecantusDB restarted on port %d (restart %d)", self.server.port, self.restarts)
        if self.on_restart is not None:
            self.on_restart()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="secantus-supervisor")

    async def stop(self) -> None:
        """Stop supervising (before the child is stopped on purpose)."""
        task, self._task = self._task, None
        await stop_task(task)
