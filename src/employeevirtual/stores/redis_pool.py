"""Redis clients on bounded pools: the one a server process's counters share (rate limits, the
login throttle, the concurrent-turn counter) and the live-turn log's two (its short commands and
its followers' blocking reads; ``streaming.redis_log``).

redis-py's default pool opens a new connection whenever every open one is busy, and refuses a
command at once past 100 (``MaxConnectionsError``): a burst of 1,000 turns opened one per
concurrent command, then failed most of them. A ``BlockingConnectionPool`` keeps at most
``max_connections`` and makes a command wait (FIFO, up to ``timeout`` seconds, then
``redis.exceptions.ConnectionError``, which the callers treat as Redis failing) for one to come
back. One pool for both limiters, so their bound is the process's, not each limiter's.
"""

from __future__ import annotations

from redis.asyncio import BlockingConnectionPool, Redis

__all__ = ["borrowed_or_opened", "open_redis"]


def open_redis(
    url: str, *, max_connections: int, timeout: float, socket_timeout: float | None = 5
) -> Redis:
    """A client on a pool of at most ``max_connections`` connections to ``url``; a command waits
    up to ``timeout`` seconds for one. ``socket_timeout`` None for blocking reads (an XREAD that
    waits longer). Its owner closes it (``aclose``, which closes the pool)."""
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=timeout,
        socket_connect_timeout=5,
        socket_timeout=socket_timeout,
        health_check_interval=30,
    )
    return Redis.from_pool(pool)


def borrowed_or_opened(client: Redis | str) -> tuple[Redis, bool]:
    """``client`` as given (borrowed: its owner closes it) or a client opened on that URL with
    the default bounds (owned: the caller closes it); and whether the caller owns it."""
    if isinstance(client, str):
        return open_redis(client, max_connections=32, timeout=30.0), True
    return client, False
