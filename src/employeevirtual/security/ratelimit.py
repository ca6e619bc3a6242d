"""Rate limiting with one interface and two backends (in-process and Redis).

Algorithm: **fixed window**. The first hit on a key opens a window of ``window_seconds``;
hits inside it add their ``cost`` to one counter, and the key expires when the window ends.
Chosen because it needs one integer and one TTL per key, maps onto atomic Redis primitives,
is cheap to reason about, and yields an exact ``RateLimit-Reset``/``Retry-After`` (the
window end). The known trade-off -- up to ``2 * limit`` hits across a window boundary --
is acceptable for abuse protection; a sliding log would cost memory per hit.

A hit whose cost would take the counter over the limit is refused and **consumes
nothing**, so a refused client is not pushed further into the penalty. A cost greater
than the limit can therefore never succeed. ``cost=0`` is a peek: it reports the current
state without consuming or creating anything.

``hit_in_order`` hits several windows (say a client's address and its user) as consecutive
``hit`` calls would, stopping at the first refusal, in one Redis round trip.
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from redis.asyncio import Redis
from redis.exceptions import NoScriptError

from employeevirtual.stores.redis_pool import borrowed_or_opened

__all__ = [
    "Hit",
    "InProcessRateLimiter",
    "RateLimitDecision",
    "RateLimiter",
    "RedisRateLimiter",
    "make_rate_limiter",
]

REDIS_KEY_PREFIX = "ev:rl:"


@dataclass(frozen=True)
class RateLimitDecision:
    """Outcome of one ``hit``; ``headers()`` renders it for an HTTP response."""

    allowed: bool
    limit: int
    remaining: int
    reset_seconds: int
    """Seconds until the window resets (>= 1 when not allowed)."""
    retry_after: int | None
    """Set only when not allowed."""
    window_seconds: int

    def headers(self) -> dict[str, str]:
        """Headers per draft-ietf-httpapi-ratelimit-headers, plus ``Retry-After`` if refused."""
        headers = {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset_seconds),
            "RateLimit-Policy": f"{self.limit};w={self.window_seconds}",
        }
        if not self.allowed and self.retry_after is not None:
            headers["Retry-After"] = str(self.retry_after)
        return headers


@dataclass(frozen=True)
class Hit:
    """One window to hit: ``cost`` against ``limit`` per ``window_seconds`` on ``key``."""

    key: str
    limit: int
    window_seconds: int
    cost: int = 1


class RateLimiter(Protocol):
    async def hit(
        self, key: str, *, limit: int, window_seconds: int, cost: int = 1
    ) -> RateLimitDecision: ...

    async def hit_in_order(self, hits: Sequence[Hit]) -> list[RateLimitDecision]:
        """``hit`` each window in turn, stopping at the first refusal: the decisions up to and
        including it (the windows after it are left untouched). Atomic with Redis."""
        ...

    async def reset(self, key: str) -> None: ...

    async def reset_prefix(self, prefix: str) -> int:
        """Forget every key starting with ``prefix`` (a person's erasure); how many."""
        ...

    async def aclose(self) -> None: ...


def _validate(limit: int, window_seconds: int, cost: int) -> None:
    if limit < 1:
        raise ValueError("limit must be >= 1")
    if window_seconds < 1:
        raise ValueError("window_seconds must be >= 1")
    if cost < 0:
        raise ValueError("cost must be >= 0")


def _decide(
    *, allowed: bool, limit: int, used: int, reset_seconds: float, window_seconds: int
) -> RateLimitDecision:
    reset = max(1, math.ceil(reset_seconds))
    return RateLimitDecision(
        allowed=allowed,
        limit=limit,
        remaining=max(0, limit - used),
        reset_seconds=reset,
        retry_after=None if allowed else reset,
        window_seconds=window_seconds,
    )


@dataclass
class _Window:
    count: int
    expires_at: float


class InProcessRateLimiter:
    """Per-process limiter: for a single worker, development and tests.

    Safe under asyncio (no await inside the critical section) and across threads (a
    short lock). Memory is bounded: expired windows are swept every ``sweep_interval``
    seconds and whenever ``max_keys`` is exceeded; if live windows still exceed it, the
    oldest are dropped down to 90% of the cap (amortising the sweep). Dropped keys get a
    fresh window: failing open is preferred over unbounded growth.
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 100_000,
        sweep_interval: float = 60.0,
    ) -> None:
        if max_keys < 1:
            raise ValueError("max_keys must be >= 1")
        self._clock = clock
        self._max_keys = max_keys
        self._sweep_interval = sweep_interval
        self._windows: dict[str, _Window] = {}
        self._lock = threading.Lock()
        self._next_sweep = clock() + sweep_interval

    def __len__(self) -> int:
        return len(self._windows)

    async def hit(
        self, key: str, *, limit: int, window_seconds: int, cost: int = 1
    ) -> RateLimitDecision:
        _validate(limit, window_seconds, cost)
        with self._lock:
            now = self._clock()
            if now >= self._next_sweep:
                self._sweep(now)
            window = self._windows.get(key)
            if window is None or window.expires_at <= now:
                if window is not None:
                    del self._windows[key]
                window = None
            used = window.count if window else 0
            expires_at = window.expires_at if window else now + window_seconds
            if used + cost > limit:
                return _decide(
                    allowed=False,
                    limit=limit,
                    used=used,
                    reset_seconds=expires_at - now,
                    window_seconds=window_seconds,
                )
            if cost > 0:
                if window is None:
                    # Re-inserted on each new window, so dict order approximates age.
                    self._windows[key] = _Window(cost, expires_at)
                    if len(self._windows) > self._max_keys:
                        self._shrink(now)
                else:
                    window.count += cost
            return _decide(
                allowed=True,
                limit=limit,
                used=used + cost,
                reset_seconds=expires_at - now,
                window_seconds=window_seconds,
            )

    async def hit_in_order(self, hits: Sequence[Hit]) -> list[RateLimitDecision]:
        decisions = []
        for h in hits:
            decision = await self.hit(
                h.key, limit=h.limit, window_seconds=h.window_seconds, cost=h.cost
            )
            decisions.append(decision)
            if not decision.allowed:
                break
        return decisions

    async def reset(self, key: str) -> None:
        with self._lock:
            self._windows.pop(key, None)

    async def reset_prefix(self, prefix: str) -> int:
        with self._lock:
            doomed = [key for key in self._windows if key.startswith(prefix)]
            for key in doomed:
                del self._windows[key]
        return len(doomed)

    def held_keys(self) -> list[str]:
        """The keys held now (expired ones included until the next sweep)."""
        with self._lock:
            return list(self._windows)

    async def aclose(self) -> None:
        with self._lock:
            self._windows.clear()

    def _sweep(self, now: float) -> None:
        self._next_sweep = now + self._sweep_interval
        expired = [k for k, w in self._windows.items() if w.expires_at <= now]
        for k in expired:
            del self._windows[k]

    def _shrink(self, now: float) -> None:
        self._sweep(now)
        if len(self._windows) <= self._max_keys:
            return
        target = max(1, self._max_keys * 9 // 10)  # the newest (just inserted) key survives
        while len(self._windows) > target:
            del self._windows[next(iter(self._windows))]


# KEYS = counters; ARGV = cost, limit, window_ms for each, in the same order. Returns, for each
# counter up to the first refused one, {allowed (0/1), used after this hit, ms until reset}.
# A refused hit changes nothing, and neither do the counters after it.
_HIT_SCRIPT = """
local out = {}
for i, key in ipairs(KEYS) do
  local cost = tonumber(ARGV[3 * i - 2])
  local limit = tonumber(ARGV[3 * i - 1])
  local window_ms = tonumber(ARGV[3 * i])
  local ttl = redis.call('PTTL', key)
  local used = 0
  if ttl > 0 then
    used = tonumber(redis.call('GET', key) or '0')
  else
    ttl = window_ms
  end
  if used + cost > limit then
    out[i] = {0, used, ttl}
    return out
  end
  if cost == 0 then
    out[i] = {1, used, ttl}
  elseif used == 0 then
    redis.call('SET', key, cost, 'PX', window_ms)
    out[i] = {1, cost, window_ms}
  else
    out[i] = {1, redis.call('INCRBY', key, cost), ttl}
  end
end
return out
"""
_HIT_SCRIPT_SHA = hashlib.sha1(_HIT_SCRIPT.encode()).hexdigest()


class RedisRateLimiter:
    """Limiter shared by all server processes through Redis.

    Each hit is one atomic Lua script (check, increment, set expiry), so concurrent
    processes never over-admit. Redis errors propagate (``redis.exceptions.RedisError``);
    the caller chooses to fail open or closed.
    """

    def __init__(self, client: Redis | str, *, key_prefix: str = REDIS_KEY_PREFIX) -> None:
        """``client`` is a ``redis.asyncio.Redis`` (borrowed: not closed by ``aclose``) or a
        URL (the limiter owns the client it creates)."""
        self._client, self._owns_client = borrowed_or_opened(client)
        self._prefix = key_prefix

    async def hit(
        self, key: str, *, limit: int, window_seconds: int, cost: int = 1
    ) -> RateLimitDecision:
        (decision,) = await self.hit_in_order([Hit(key, limit, window_seconds, cost)])
        return decision

    async def hit_in_order(self, hits: Sequence[Hit]) -> list[RateLimitDecision]:
        keys: list[str] = []
        args: list[int] = []
        for h in hits:
            _validate(h.limit, h.window_seconds, h.cost)
            keys.append(self._prefix + h.key)
            args += (h.cost, h.limit, h.window_seconds * 1000)
        try:
            result = await self._client.evalsha(_HIT_SCRIPT_SHA, len(keys), *keys, *args)
        except NoScriptError:
            result = await self._client.eval(_HIT_SCRIPT, len(keys), *keys, *args)  # caches it
        return [
            _decide(
                allowed=bool(int(allowed)),
                limit=h.limit,
                used=int(used),
                reset_seconds=int(ttl_ms) / 1000,
                window_seconds=h.window_seconds,
            )
            for h, (allowed, used, ttl_ms) in zip(hits, result, strict=False)
        ]

    async def reset(self, key: str) -> None:
        await self._client.delete(self._prefix + key)

    async def reset_prefix(self, prefix: str) -> int:
        """SCAN (never KEYS, which blocks the server) for the prefix, then UNLINK in batches."""
        pattern = _glob_escape(self._prefix + prefix) + "*"
        batch: list[bytes] = []
        removed = 0
        async for key in self._client.scan_iter(match=pattern, count=1000):
            batch.append(key)
            if len(batch) >= 500:
                removed += int(await self._client.unlink(*batch))
                batch = []
        if batch:
            removed += int(await self._client.unlink(*batch))
        return removed

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()


def _glob_escape(text: str) -> str:
    """``text`` matched literally by a Redis glob pattern."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


def make_rate_limiter(
    redis: Redis | str | None, *, key_prefix: str = REDIS_KEY_PREFIX
) -> RateLimiter:
    """Redis-backed when a client or URL is given (multi-process deployments), else
    in-process."""
    if isinstance(redis, Redis) or redis:  # None or "": not configured
        return RedisRateLimiter(redis, key_prefix=key_prefix)
    return InProcessRateLimiter()
