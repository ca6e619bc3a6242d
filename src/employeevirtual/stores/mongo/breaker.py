"""A circuit breaker for MongoDB: while it is unreachable, fail at once instead of waiting out
server selection on every call.

The driver's own monitor (a heartbeat every second, see ``client.connect``) opens and closes
it: a failed heartbeat, or a call failing to reach the server, opens it; a heartbeat that
succeeds closes it. While it is open, calls raise ``MongoUnavailable`` (a ``ConnectionFailure``,
so every caller's existing ``PyMongoError`` handling applies: turns commit in SQL and the relay
copies them later). If no heartbeat says otherwise, it lets calls try again after
``retry_seconds``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from pymongo import monitoring
from pymongo.errors import ConnectionFailure

__all__ = ["CircuitBreaker", "MongoUnavailable"]

log = logging.getLogger(__name__)


class MongoUnavailable(ConnectionFailure):
    """Raised without trying while the breaker is open."""


class CircuitBreaker(monitoring.ServerHeartbeatListener):
    def __init__(
        self, *, retry_seconds: float = 5.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.retry_seconds = retry_seconds
        self._clock = clock
        self._opened_at: float | None = None
        self.last_error: str | None = None
        self.opened = 0  # how many times it opened (for readiness and tests)

    @property
    def is_open(self) -> bool:
        return self._opened_at is not None

    def check(self) -> None:
        """Raise at once while open; after ``retry_seconds`` let one round of calls try."""
        opened = self._opened_at
        if opened is None:
            return
        if self._clock() - opened < self.retry_seconds:
            raise MongoUnavailable(f"MongoDB unreachable ({self.last_error}); not trying for now")
        self._opened_at = self._clock()  # half-open: these calls try; a failure re-opens

    def failure(self, error: BaseException | str) -> None:
        self.last_error = error if isinstance(error, str) else type(error).__name__
        if self._opened_at is None:
            self.opened += 1
            log.warning("MongoDB unreachable (%s): failing fast until it answers", self.last_error)
        self._opened_at = self._clock()

    def success(self) -> None:
        if self._opened_at is not None:
            log.warning("MongoDB reachable again")
        self._opened_at = None

    # -- the driver's heartbeats (called on the driver's monitor, synchronously) -------------

    def started(self, event: monitoring.ServerHeartbeatStartedEvent) -> None:
        pass

    def succeeded(self, event: monitoring.ServerHeartbeatSucceededEvent) -> None:
        self.success()

    def failed(self, event: monitoring.ServerHeartbeatFailedEvent) -> None:
        self.failure(event.reply)
