"""The server a fault scenario runs: the real ``create_app`` plus, when
``EV_FAULT_CRASH_AFTER_COMMIT_EVERY`` is N > 0, a post-commit hook that kills the process like a
SIGKILL right after every Nth turn's SQL commit, before MongoDB is written, to prove the relay
and the idempotency keys cover that window.

Run as ``uvicorn tools.faults.server:create_app --factory``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

from fastapi import FastAPI

from employeevirtual.main import create_app as create_product_app
from employeevirtual.settings import Settings
from employeevirtual.stores.records import ConversationRecord

__all__ = ["CRASH_EVERY_ENV", "crash_after_commit", "create_app"]

log = logging.getLogger("employeevirtual.faults")

CRASH_EVERY_ENV = "EV_FAULT_CRASH_AFTER_COMMIT_EVERY"


def crash_after_commit(every: int) -> Callable[[ConversationRecord], None]:
    commits = 0

    def hook(_conversation: ConversationRecord) -> None:
        nonlocal commits
        commits += 1
        if commits % every == 0:
            log.critical("fault injection: exiting after SQL commit %d", commits)
            logging.shutdown()
            os._exit(137)

    return hook


def create_app() -> FastAPI:
    every = int(os.environ.get(CRASH_EVERY_ENV) or 0)
    hook = crash_after_commit(every) if every > 0 else None
    return create_product_app(Settings(), after_turn_commit=hook)
