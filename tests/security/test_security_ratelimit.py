"""In-process rate limiter and the decision/header contract (no I/O, fake clock)."""

from __future__ import annotations

import asyncio

import pytest

from employeevirtual.security.ratelimit import (
    Hit,
    InProcessRateLimiter,
    RateLimitDecision,
    RedisRateLimiter,
    make_rate_limiter,
)


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def limiter(clock: FakeClock) -> InProcessRateLimiter:
    return InProcessRateLimiter(clock=clock)


async def test_allows_limit_hits_then_refuses(limiter: InProcessRateLimiter) -> None:
    for expected_remaining in (2, 1, 0):
        d = await limiter.hit("k", limit=3, window_seconds=60)
        assert d.allowed
        assert d.remaining == expected_remaining
        assert d.retry_after is None
    refused = await limiter.hit("k", limit=3, window_seconds=60)
    assert not refused.allowed
    assert refused.remaining == 0
    assert refused.retry_after == refused.reset_seconds == 60


async def test_retry_after_counts_down_and_window_resets(
    limiter: InProcessRateLimiter, clock: FakeClock
) -> None:
    for _ in range(2):
        await limiter.hit("k", limit=2, window_seconds=10)
    clock.advance(6.5)
    refused = await limiter.hit("k", limit=2, window_seconds=10)
    assert not refused.allowed
    assert refused.retry_after == 4  # ceil(3.5)
    clock.advance(3.4)
    last = await limiter.hit("k", limit=2, window_seconds=10)
    assert not last.allowed
    assert last.retry_after == 1  # never 0 while refused
    clock.advance(0.1)
    fresh = await limiter.hit("k", limit=2, window_seconds=10)
    assert fresh.allowed
    assert fresh.remaining == 1
    assert fresh.reset_seconds == 10


async def test_keys_are_independent_and_reset(limiter: InProcessRateLimiter) -> None:
    await limiter.hit("a", limit=1, window_seconds=60)
    assert not (await limiter.hit("a", limit=1, window_seconds=60)).allowed
    assert (await limiter.hit("b", limit=1, window_seconds=60)).allowed
    await limiter.reset("a")
    assert (await limiter.hit("a", limit=1, window_seconds=60)).allowed


async def test_refused_cost_consumes_nothing(limiter: InProcessRateLimiter) -> None:
    assert (await limiter.hit("k", limit=5, window_seconds=60, cost=3)).remaining == 2
    refused = await limiter.hit("k", limit=5, window_seconds=60, cost=3)
    assert not refused.allowed
    assert refused.remaining == 2
    assert (await limiter.hit("k", limit=5, window_seconds=60, cost=2)).allowed
    assert not (await limiter.hit("k", limit=1, window_seconds=60, cost=2)).allowed


async def test_cost_zero_peeks_without_creating_state(limiter: InProcessRateLimiter) -> None:
    peek = await limiter.hit("k", limit=2, window_seconds=60, cost=0)
    assert peek.allowed
    assert peek.remaining == 2
    assert len(limiter) == 0
    await limiter.hit("k", limit=2, window_seconds=60)
    assert (await limiter.hit("k", limit=2, window_seconds=60, cost=0)).remaining == 1


@pytest.mark.parametrize(("limit", "window", "cost"), [(0, 60, 1), (1, 0, 1), (1, 60, -1)])
async def test_rejects_invalid_arguments(
    limiter: InProcessRateLimiter, limit: int, window: int, cost: int
) -> None:
    with pytest.raises(ValueError):  # noqa: PT011
        await limiter.hit("k", limit=limit, window_seconds=window, cost=cost)


async def test_concurrent_hits_never_over_admit(limiter: InProcessRateLimiter) -> None:
    results = await asyncio.gather(
        *(limiter.hit("k", limit=10, window_seconds=60) for _ in range(50))
    )
    assert sum(d.allowed for d in results) == 10


async def test_memory_is_bounded(clock: FakeClock) -> None:
    limiter = InProcessRateLimiter(clock=clock, max_keys=10, sweep_interval=30)
    for i in range(100):
        await limiter.hit(f"k{i}", limit=1, window_seconds=5)
    assert len(limiter) <= 10
    # Newest key survived eviction and is still limited.
    assert not (await limiter.hit("k99", limit=1, window_seconds=5)).allowed
    clock.advance(31)
    await limiter.hit("other", limit=1, window_seconds=5)
    assert len(limiter) == 1  # expired windows swept


def test_headers_when_allowed() -> None:
    d = RateLimitDecision(
        allowed=True, limit=100, remaining=42, reset_seconds=17, retry_after=None, window_seconds=60
    )
    assert d.headers() == {
        "RateLimit-Limit": "100",
        "RateLimit-Remaining": "42",
        "RateLimit-Reset": "17",
        "RateLimit-Policy": "100;w=60",
    }


async def test_headers_when_refused(limiter: InProcessRateLimiter) -> None:
    await limiter.hit("k", limit=1, window_seconds=30)
    headers = (await limiter.hit("k", limit=1, window_seconds=30)).headers()
    assert headers == {
        "RateLimit-Limit": "1",
        "RateLimit-Remaining": "0",
        "RateLimit-Reset": "30",
        "RateLimit-Policy": "1;w=30",
        "Retry-After": "30",
    }


async def test_make_rate_limiter_picks_backend() -> None:
    assert isinstance(make_rate_limiter(None), InProcessRateLimiter)
    assert isinstance(make_rate_limiter(""), InProcessRateLimiter)
    redis_limiter = make_rate_limiter("redis://127.0.0.1:1/0")  # no connection until used
    assert isinstance(redis_limiter, RedisRateLimiter)
    await redis_limiter.aclose()


async def test_reset_prefix_removes_only_the_keys_under_it(limiter: InProcessRateLimiter) -> None:
    for key in ("p:1.2.3.4", "p:5.6.7.8", "p:5.6.7.8:wait:6", "pq:1.2.3.4", "q:1"):
        await limiter.hit(key, limit=10, window_seconds=60)
    assert await limiter.reset_prefix("p:") == 3
    assert sorted(limiter.held_keys()) == ["pq:1.2.3.4", "q:1"]


async def test_hit_in_order_stops_at_the_first_refusal(limiter: InProcessRateLimiter) -> None:
    """As consecutive hits would: the windows before a refusal are consumed, the ones after it
    left untouched."""
    first, second = Hit("first", 2, 60), Hit("second", 1, 60)
    assert [d.remaining for d in await limiter.hit_in_order([first, second])] == [1, 0]
    refused = await limiter.hit_in_order([first, second])
    assert [(d.allowed, d.remaining) for d in refused] == [(True, 0), (False, 0)]
    assert [d.allowed for d in await limiter.hit_in_order([first, Hit("third", 5, 60)])] == [False]
    assert (await limiter.hit("third", limit=5, window_seconds=60, cost=0)).remaining == 5
