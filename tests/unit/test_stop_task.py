"""Stopping a background task never hangs a shutdown, even when the task ignores cancellation."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from employeevirtual.tasks import stop_task


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
