"""A watchdog for hung tests: past the limit it prints every asyncio task's stack and cancels
the tasks that belong to the test, so one hang fails one test instead of stalling the run."""

from __future__ import annotations

import asyncio
import sys
import threading
from types import FrameType


def _stack_files(task: asyncio.Task[object]) -> list[str]:
    frames: list[FrameType] = task.get_stack()
    return [frame.f_code.co_filename for frame in frames]


def _dump_and_cancel(test_id: str, tests_dir: str) -> None:
    print(f"\n=== hang guard: {test_id} passed its time limit; asyncio tasks:", file=sys.stderr)
    for task in asyncio.all_tasks():
        task.print_stack(file=sys.stderr)
    for task in asyncio.all_tasks():
        if any(path.startswith(tests_dir) for path in _stack_files(task)):
            task.cancel(f"hang guard: {test_id} ran too long")


class HangGuard:
    def __init__(self, loop: asyncio.AbstractEventLoop, test_id: str, tests_dir: str) -> None:
        self._timer = threading.Timer(
            0, lambda: loop.call_soon_threadsafe(_dump_and_cancel, test_id, tests_dir)
        )
        self._timer.daemon = True

    def start(self, seconds: float) -> None:
        self._timer.interval = seconds
        self._timer.start()

    def stop(self) -> None:
        self._timer.cancel()
