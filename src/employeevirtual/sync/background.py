"""One named asyncio task that a service starts once and stops (cancels) on shutdown."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from employeevirtual.tasks import stop_task

__all__ = ["Background"]


class Background:
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
