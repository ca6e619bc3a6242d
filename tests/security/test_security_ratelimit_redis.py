"""Redis rate limiter against a real Redis.

Skipped when EV_TEST_REDIS_URL is unset; when it is set, an unreachable Redis is an error,
never a skip. Every run uses its own key prefix so parallel runs cannot collide.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from employeevirtual.security.login_throttle import LoginThrottle
from employeevirtual.security.ratelimit import (
    REDIS_KEY_PREFIX,
    Hit,
    RedisRateLimiter,
    make_rate_limiter,
)

REDIS_URL = os.environ.get("EV_TEST_REDIS_URL")

pytestmark = [
    pytest.mark.redis,
    pytest.mark.skipif(
        not REDIS_URL, reason="EV_TEST_REDIS_URL is not set: Redis rate limiter tests need Redis"
    ),
]

RUN_PREFIX = f"{REDIS_KEY_PREFIX}test:{uuid.uuid4().hex}:"


@pytest.fixture
async def redis_client() -> AsyncIterator[Redis]:
    assert REDIS_URL is not None
    client = Redis.from_url(REDIS_URL, socket_connect_timeout=3, socket_timeout=3)
    try:
        await client.ping()
    except Exception as exc:  # report without the URL, which may carry a password
        await client.aclose()
        pytest.fail(
            f"EV_TEST_REDIS_URL is set but Redis is unreachable: {type(exc).__name__}: {exc}"
        )
    yield client
    keys = [k async for k in client.scan_iter(match=f"{RUN_PREFIX}*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


@pytest.fixture
async def limiter(redis_client: Redis) -> AsyncIterator[RedisRateLimiter]:
    limiter = RedisRateLimiter(redis_client, key_prefix=RUN_PREFIX)
    yield limiter
    await limiter.aclose()


@pytest.fixture
async def second_limiter(redis_client: Redis) -> AsyncIterator[RedisRateLimiter]:
    """A limiter with its own client, as another server process would have."""
    assert REDIS_URL is not None
    limiter = RedisRateLimiter(REDIS_URL, key_prefix=RUN_PREFIX)
    yield limiter
    await limiter.aclose()


async def test_allows_limit_then_refuses(limiter: RedisRateLimiter) -> None:
    decisions = [await limiter.hit("basic", limit=3, window_seconds=60) for _ in range(4)]
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert [d.remaining for d in decisions] == [2, 1, 0, 0]
    refused = decisions[-1]
    assert refused.retry_after is not None
    assert 1 <= refused.retry_after <= 60
    assert refused.headers()["Retry-After"] == str(refused.retry_after)


async def test_two_clients_share_one_limit(
    limiter: RedisRateLimiter, second_limiter: RedisRateLimiter
) -> None:
    allowed = 0
    for i in range(6):
        source = limiter if i % 2 else second_limiter
        allowed += (await source.hit("shared", limit=4, window_seconds=60)).allowed
    assert allowed == 4
    assert not (await limiter.hit("shared", limit=4, window_seconds=60)).allowed
    assert not (await second_limiter.hit("shared", limit=4, window_seconds=60)).allowed


async def test_concurrent_hits_never_over_admit(
    limiter: RedisRateLimiter, second_limiter: RedisRateLimiter
) -> None:
    hits = [
        (limiter if i % 2 else second_limiter).hit("race", limit=10, window_seconds=60)
        for i in range(40)
    ]
    results = await asyncio.gather(*hits)
    assert sum(d.allowed for d in results) == 10


async def test_refused_cost_consumes_nothing(limiter: RedisRateLimiter) -> None:
    assert (await limiter.hit("cost", limit=5, window_seconds=60, cost=3)).remaining == 2
    refused = await limiter.hit("cost", limit=5, window_seconds=60, cost=3)
    assert not refused.allowed
    assert refused.remaining == 2
    assert (await limiter.hit("cost", limit=5, window_seconds=60, cost=2)).allowed


async def test_peek_creates_no_key(limiter: RedisRateLimiter, redis_client: Redis) -> None:
    peek = await limiter.hit("peek", limit=2, window_seconds=60, cost=0)
    assert peek.allowed
    assert peek.remaining == 2
    assert not await redis_client.exists(f"{RUN_PREFIX}peek")


async def test_key_expires_with_window(limiter: RedisRateLimiter, redis_client: Redis) -> None:
    await limiter.hit("ttl", limit=1, window_seconds=1)
    ttl_ms = await redis_client.pttl(f"{RUN_PREFIX}ttl")
    assert 0 < ttl_ms <= 1000
    refused = await limiter.hit("ttl", limit=1, window_seconds=1)
    assert not refused.allowed
    assert refused.retry_after == 1
    await asyncio.sleep(1.1)  # the only real wait in the suite
    assert not await redis_client.exists(f"{RUN_PREFIX}ttl")
    assert (await limiter.hit("ttl", limit=1, window_seconds=1)).allowed


async def test_hit_in_order_stops_at_the_first_refusal(
    limiter: RedisRateLimiter, redis_client: Redis
) -> None:
    """One script, as consecutive hits would: the windows before a refusal are consumed, the
    ones after it left untouched (no key created)."""
    first, second = Hit("order:first", 2, 60), Hit("order:second", 1, 30)
    decisions = await limiter.hit_in_order([first, second])
    assert [(d.allowed, d.remaining, d.window_seconds) for d in decisions] == [
        (True, 1, 60),
        (True, 0, 30),
    ]
    assert 29 <= decisions[1].reset_seconds <= 30
    refused = await limiter.hit_in_order([first, second])
    assert [(d.allowed, d.remaining) for d in refused] == [(True, 0), (False, 0)]
    assert [d.allowed for d in await limiter.hit_in_order([first, Hit("order:third", 5, 60)])] == [
        False
    ]
    assert not await redis_client.exists(f"{RUN_PREFIX}order:third")
    assert int(await redis_client.get(f"{RUN_PREFIX}order:first")) == 2


async def test_reset(limiter: RedisRateLimiter) -> None:
    await limiter.hit("reset", limit=1, window_seconds=60)
    assert not (await limiter.hit("reset", limit=1, window_seconds=60)).allowed
    await limiter.reset("reset")
    assert (await limiter.hit("reset", limit=1, window_seconds=60)).allowed


async def test_default_prefix_via_factory(redis_client: Redis) -> None:
    assert REDIS_URL is not None
    limiter = make_rate_limiter(REDIS_URL)
    key = f"test:{uuid.uuid4().hex}"
    try:
        await limiter.hit(key, limit=1, window_seconds=60)
        assert await redis_client.exists(f"ev:rl:{key}")
    finally:
        await limiter.reset(key)
        await limiter.aclose()


async def test_login_throttle_keys_hold_no_raw_email(
    limiter: RedisRateLimiter, redis_client: Redis
) -> None:
    throttle = LoginThrottle(limiter, free_failures=2, window_seconds=60, base_delay=30)
    for _ in range(2):
        await throttle.record_failure("Alice@Example.com", "203.0.113.7")
    assert not (await throttle.check("alice@example.com", "203.0.113.7")).allowed
    keys = [k.decode() async for k in redis_client.scan_iter(match=f"{RUN_PREFIX}*")]
    assert keys
    assert not any("alice" in k.lower() or "example" in k.lower() for k in keys)


async def test_reset_prefix_removes_only_the_keys_under_it(limiter: RedisRateLimiter) -> None:
    """An erasure forgets a person's failed-login counters from every address by prefix; glob
    characters in the prefix are matched literally."""
    for key in ("p*[x]:1.2.3.4", "p*[x]:5.6.7.8", "p*[x]:5.6.7.8:wait:6", "pa[x]:1.2.3.4", "q:1"):
        await limiter.hit(key, limit=10, window_seconds=60)
    assert await limiter.reset_prefix("p*[x]:") == 3
    for key, used in (("p*[x]:1.2.3.4", 0), ("pa[x]:1.2.3.4", 1), ("q:1", 1)):
        peek = await limiter.hit(key, limit=10, window_seconds=60, cost=0)
        assert 10 - peek.remaining == used, key
