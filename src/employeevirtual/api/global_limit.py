"""The global rate limit's hit for one request, when a route takes it rather than the
middleware: on the turn's routes the chat rate limit's dependency hits the global window and
the user's chat window in one Redis round trip (``RateLimiter.hit_in_order``), instead of the
middleware's round trip before routing and the dependency's after authentication.

The middleware still owns the hit: it leaves it pending on the request (``request.state``);
if the request answers without the dependency having taken it (a 401, a 422, an error), the
middleware takes it before the answer's first byte, and a refusal replaces that answer. Every
request is counted once either way.

An address whose global window refused a request lately (``RecentlyRefused``) gets its hit
taken before routing again, on those routes too: a client over its limit is refused before any
parsing, authentication or database work, as on every other path."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from starlette.types import Scope

from employeevirtual.security.ratelimit import Hit, RateLimitDecision

__all__ = [
    "TAKEN_WITH_THE_CHAT_LIMIT",
    "PendingGlobalHit",
    "RecentlyRefused",
    "pending_global_hit",
    "refusal",
]

# (method, path) of the routes whose chat rate limit dependency takes the global hit too (the
# test of the dependency walk checks each walks one); other turn routes keep the middleware's
TAKEN_WITH_THE_CHAT_LIMIT = frozenset(
    {("POST", "/api/chat/agent"), ("POST", "/v1/chat/completions")}
)

_STATE_KEY = "pending_global_hit"


@dataclass
class PendingGlobalHit:
    """The global window to hit for this request; ``taken`` once someone tried (a Redis
    failure counts: the limit fails open), ``decision`` the answer when one came."""

    hit: Hit
    taken: bool = False
    decision: RateLimitDecision | None = None

    def put_on(self, scope: Scope) -> None:
        scope.setdefault("state", {})[_STATE_KEY] = self


def pending_global_hit(scope: Scope) -> PendingGlobalHit | None:
    """The request's global hit if the middleware left it to the route and nobody took it."""
    pending: PendingGlobalHit | None = scope.get("state", {}).get(_STATE_KEY)
    return pending if pending is not None and not pending.taken else None


def refusal(decision: RateLimitDecision) -> str:
    """The 429's message for a refused global hit."""
    return (
        f"too many requests from your address (limit {decision.limit} per "
        f"{decision.window_seconds} s); retry in {decision.retry_after} s"
    )


class RecentlyRefused:
    """Keys whose window refused a hit, until that window surely ends (a fixed window's count
    only grows). It only says where the middleware takes the hit, never the answer: Redis
    gives that. Bounded: when full, the expired keys go, or all of them."""

    def __init__(self, *, max_keys: int = 10_000, clock: Callable[[], float] = time.monotonic):
        self._until: dict[str, float] = {}
        self._max_keys = max_keys
        self._clock = clock

    def note(self, key: str, decision: RateLimitDecision) -> None:
        if decision.allowed:
            return
        now = self._clock()
        if len(self._until) >= self._max_keys:
            self._until = {k: t for k, t in self._until.items() if t > now}
            if len(self._until) >= self._max_keys:
                self._until.clear()
        # reset_seconds is the time left rounded up: the window lasts at least a second less
        self._until[key] = now + decision.reset_seconds - 1

    def __contains__(self, key: str) -> bool:
        until = self._until.get(key)
        if until is None:
            return False
        if until > self._clock():
            return True
        del self._until[key]
        return False
