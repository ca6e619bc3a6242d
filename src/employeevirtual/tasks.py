"""Background tasks: one named task a service starts once (``Background``), stopped without
ever hanging a shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

__all__ = ["Background", "detached", "raise_if_cancelling", "run_rounds", "stop_task"]

log = logging.getLogger(__name__)

T = TypeVar("T")


def detached(coro: Coroutine[Any, Any, T], *, name: str) -> asyncio.Task[T]:
    """``coro`` as a task in a context of its own. A task started inside a request would copy
    the request's context (its request id in log lines, its trace as the parent of every span)
    and keep it for all the later work it does for other requests: a shared writer, a summary."""
    return asyncio.get_running_loop().create_task(coro, name=name, context=contextvars.Context())


def raise_if_cancelling() -> None:
    """Raise ``CancelledError`` if the current task was asked to stop; a background loop calls it
    between rounds, before it sleeps.

    Why a loop cannot rely on the ``CancelledError`` alone: on Python 3.11, ``asyncio.wait_for``
    returns its result instead of raising when the cancellation arrives in the same loop pass as
    the awaited thing finishes (CPython gh-86296, fixed in 3.12). pymongo's ``async_sendall``
    sends every command through ``wait_for``, and the write finishes at once, so a ``cancel()``
    that lands on a MongoDB command is lost about one time in twenty: the round goes on, the loop
    sleeps its interval (300 s for the rollups) and ``stop`` waits for it. ``Task.cancelling()``
    still counts the request, so a loop that checks it stops anyway. (Another measurement:
    about 1 in 3 cancels landing in ``estimated_document_count`` under load.)
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


async def stop_task(task: asyncio.Task[None] | None, *, timeout: float = 10.0) -> None:  # noqa: ASYNC109
    """Cancel ``task`` and wait for it, at most ``timeout`` seconds.

    A driver call that swallows the cancellation would otherwise keep ``await task`` (and with it
    the server's shutdown) waiting forever; past the timeout the task is left behind, logged.
    """
    if task is None or task.done():
        return
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=timeout)
    if not done:
        log.warning(
            "background task %s did not stop within %.0f s; left behind", task.get_name(), timeout
        )
        return
    if not task.cancelled() and task.exception() is not None:
        log.warning("background task %s ended with %r", task.get_name(), task.exception())


async def run_rounds(
    run_round: Callable[[], Awaitable[object]], *, wake: asyncio.Event, interval: float, what: str
) -> None:
    """A worker's loop: run a round, then sleep ``interval`` seconds or until ``wake`` is set.

    A failed round is logged and retried on the next one; the loop ends only by cancellation
    (seen even when a driver call swallowed it: see ``raise_if_cancelling``).
    """
    while True:
        try:
            await run_round()
        except Exception:
            log.exception("%s round failed; retrying", what)
        raise_if_cancelling()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), interval)
        wake.clear()
        raise_if_cancelling()


class Background:
    """One named asyncio task that a service starts once and stops (cancels) on shutdown."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None

    def start(self, loop: Callable[[], Coroutine[Any, Any, None]]) -> None:
        if self._task is None:
            self._task = asyncio.create_task(loop(), name=self.name)

    async def stop(self) -> None:
        task, self._task = self._task, None
        await stop_task(task)


class Periodic:
    """A service whose ``_loop`` runs as its one background task, rounds ``interval`` seconds
    apart (0: never started)."""

    interval: float
    _background: Background

    def start(self) -> None:
        if self.interval > 0:
            self._background.start(self._loop)

    async def stop(self) -> None:
        await self._background.stop()

    async def _loop(self) -> None:
        raise NotImplementedError
