"""How many things one caller may do at once (concurrent chat turns per user).

Two backends with one interface, like the rate limiter: an in-process counter, and a Redis
counter shared by every server process. A Redis slot carries a TTL so that a process that
dies while holding it cannot block the user for ever; the TTL is renewed on each acquire.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Protocol

from redis.asyncio import Redis
from redis.exceptions import NoScriptError, RedisError

from employeevirtual.stores.redis_pool import borrowed_or_opened

__all__ = [
    "ConcurrencyLimiter",
    "InProcessConcurrencyLimiter",
    "NoSlotAvailable",
    "RedisConcurrencyLimiter",
    "make_concurrency_limiter",
]

log = logging.getLogger(__name__)


class NoSlotAvailable(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"at most {limit} at once")
        self.limit = limit


class ConcurrencyLimiter(Protocol):
    def hold(self, key: str, *, limit: int) -> AbstractAsyncContextManager[None]:
        """Take one of ``limit`` slots for ``key`` for the block; NoSlotAvailable if none."""
        ...

    async def aclose(self) -> None: ...


class InProcessConcurrencyLimiter:
    def __init__(self) -> None:
        self._held: dict[str, int] = {}

    def held(self, key: str) -> int:
        return self._held.get(key, 0)

    @asynccontextmanager
    async def hold(self, key: str, *, limit: int) -> AsyncIterator[None]:
        # no await between the check and the increment: atomic under asyncio
        used = self._held.get(key, 0)
        if used >= limit:
            raise NoSlotAvailable(limit)
        self._held[key] = used + 1
        try:
            yield
        finally:
            left = self._held.get(key, 1) - 1
            if left > 0:
                self._held[key] = left
            else:
                self._held.pop(key, None)

    async def aclose(self) -> None:
        self._held.clear()


# KEYS[1] = counter; ARGV = limit, ttl_ms. 1 when a slot was taken, 0 when all are in use.
_ACQUIRE = """
local n = redis.call('INCR', KEYS[1])
if n > tonumber(ARGV[1]) then
  if redis.call('DECR', KEYS[1]) <= 0 then redis.call('DEL', KEYS[1]) end
  return 0
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""
_RELEASE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local n = redis.call('DECR', KEYS[1])
if n <= 0 then redis.call('DEL', KEYS[1]) end
return n
"""

_SHA = {script: hashlib.sha1(script.encode()).hexdigest() for script in (_ACQUIRE, _RELEASE)}


class RedisConcurrencyLimiter:
    """Slots counted in Redis (atomic Lua), shared by all server processes."""

    def __init__(self, client: Redis | str, *, key_prefix: str, ttl_seconds: float) -> None:
        """``client`` is a ``redis.asyncio.Redis`` (borrowed: not closed by ``aclose``; the
        server's shares the rate limiter's pool) or a URL (the limiter owns the client it
        creates)."""
        self._client, self._owns_client = borrowed_or_opened(client)
        self._prefix = key_prefix
        self._ttl_ms = max(1000, int(ttl_seconds * 1000))

    async def _eval(self, script: str, key: str, *args: int) -> int:
        try:
            return int(await self._client.evalsha(_SHA[script], 1, key, *args))
        except NoScriptError:
            return int(await self._client.eval(script, 1, key, *args))

    async def held(self, key: str) -> int:
        value = await self._client.get(self._prefix + key)
        return int(value or 0)

    @asynccontextmanager
    async def hold(self, key: str, *, limit: int) -> AsyncIterator[None]:
        full_key = self._prefix + key
        if not await self._eval(_ACQUIRE, full_key, limit, self._ttl_ms):
            raise NoSlotAvailable(limit)
        try:
            yield
        finally:
            try:
                await self._eval(_RELEASE, full_key)
            except RedisError as exc:  # the slot's TTL frees it
                log.warning("could not release a concurrency slot: %s", type(exc).__name__)

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()


def make_concurrency_limiter(
    redis: Redis | str | None, *, key_prefix: str, ttl_seconds: float
) -> ConcurrencyLimiter:
    """Redis-backed when a client or URL is given (multi-process deployments), else
    in-process."""
    if isinstance(redis, Redis) or redis:  # None or "": not configured
        return RedisConcurrencyLimiter(redis, key_prefix=key_prefix, ttl_seconds=ttl_seconds)
    return InProcessConcurrencyLimiter()
