"""Stopping a background task never hangs a shutdown, even when the task ignores cancellation."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from employeevirtual.analytics.rollups import RollupReport, RollupTask
from employeevirtual.request_context import current_request_id, request_id_var
from employeevirtual.tasks import detached, run_rounds, stop_task


async def test_a_task_that_swallows_its_cancellation_is_left_behind_in_time(
    caplog: pytest.LogCaptureFixture,
) -> None:
    release = asyncio.Event()

    async def stubborn() -> None:
        while not release.is_set():
            with contextlib.suppress(asyncio.CancelledError):
                await release.wait()

    task = asyncio.create_task(stubborn(), name="stubborn")
    await asyncio.sleep(0)
    await asyncio.wait_for(stop_task(task, timeout=0.2), 5)
    assert not task.done()
    assert "stubborn did not stop within" in caplog.text
    release.set()
    await task


async def test_a_cooperative_task_is_cancelled_and_awaited() -> None:
    task = asyncio.create_task(asyncio.sleep(3600), name="sleeper")
    await asyncio.sleep(0)
    await stop_task(task)
    assert task.cancelled()
    await stop_task(None)  # nothing to stop


async def _a_round_whose_cancellation_is_swallowed(finish: asyncio.Future[None]) -> None:
    """What pymongo's ``async_sendall`` does on Python 3.11: ``asyncio.wait_for`` on something
    that finishes in the same loop pass as the cancellation returns instead of raising
    (CPython gh-86296). ``finish`` is resolved by the test right before it cancels."""
    with contextlib.suppress(asyncio.CancelledError):  # 3.12+ raises: swallow it the same way
        await asyncio.wait_for(finish, 5)


async def _started(task: asyncio.Task[None], entered: asyncio.Event) -> None:
    await asyncio.wait_for(entered.wait(), 5)
    assert not task.done()


async def test_run_rounds_stops_even_when_a_round_swallowed_the_cancellation() -> None:
    finish: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    entered = asyncio.Event()

    async def round_() -> None:
        entered.set()
        if not finish.done():
            await _a_round_whose_cancellation_is_swallowed(finish)

    task = asyncio.create_task(
        run_rounds(round_, wake=asyncio.Event(), interval=3600, what="test"), name="rounds"
    )
    await _started(task, entered)
    finish.set_result(None)
    # stop_task cancels before its first await: the same pass as the round's wait_for finishing
    await asyncio.wait_for(stop_task(task, timeout=5), 10)
    assert task.cancelled()  # not asleep for the round's 3600 s interval


async def test_the_rollup_loop_stops_even_when_a_round_swallowed_the_cancellation() -> None:
    finish: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    entered = asyncio.Event()

    class SwallowingRollups:
        async def run(self) -> RollupReport:
            entered.set()
            await _a_round_whose_cancellation_is_swallowed(finish)
            return RollupReport([], None)

    rollups = RollupTask(SwallowingRollups(), interval=3600)  # type: ignore[arg-type]
    rollups.start()
    task = rollups._background._task
    assert task is not None
    await _started(task, entered)
    finish.set_result(None)
    await asyncio.wait_for(rollups.stop(), 10)
    assert task.cancelled()


async def test_a_loop_whose_round_swallowed_the_cancellation_still_stops() -> None:
    """PyMongo's async client can swallow a cancel mid-call: the round returns (or fails)
    normally, and the worker's loop must still end at its next pass, not at its next wake."""
    entered = asyncio.Event()

    async def swallowing_round() -> None:
        entered.set()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(3600)

    wake = asyncio.Event()
    task = asyncio.create_task(
        run_rounds(swallowing_round, wake=wake, interval=3600, what="test"), name="swallowed"
    )
    await entered.wait()
    await asyncio.wait_for(stop_task(task, timeout=30), 5)
    assert task.cancelled()


async def test_a_detached_task_keeps_nothing_of_the_request_that_started_it() -> None:
    """A shared writer started by one request must not log or trace as that request."""
    request_id_var.set("req-1")

    async def seen() -> str | None:
        return current_request_id()

    assert await asyncio.create_task(seen()) == "req-1"  # what a plain task inherits
    assert await detached(seen(), name="writer") is None
