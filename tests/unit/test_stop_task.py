"""Stopping a background task never hangs a shutdown, even when the task ignores cancellation."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from employeevirtual.tasks import run_rounds, stop_task


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
