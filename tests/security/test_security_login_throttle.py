"""Login throttle over the in-process limiter (fake clock)."""

from __future__ import annotations

import pytest

from employeevirtual.security.login_throttle import LoginThrottle
from employeevirtual.security.ratelimit import InProcessRateLimiter


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def throttle(clock: FakeClock) -> LoginThrottle:
    return LoginThrottle(InProcessRateLimiter(clock=clock), max_failures=3, window_seconds=300)


async def fail(throttle: LoginThrottle, email: str, ip: str, times: int) -> None:
    for _ in range(times):
        await throttle.record_failure(email, ip)


async def test_check_consumes_nothing(throttle: LoginThrottle) -> None:
    for _ in range(10):
        d = await throttle.check("a@example.com", "192.0.2.1")
        assert d.allowed
        assert d.remaining == 3


async def test_blocks_account_across_addresses(throttle: LoginThrottle) -> None:
    for i in range(3):
        await throttle.record_failure("victim@example.com", f"192.0.2.{i}")
    blocked = await throttle.check("victim@example.com", "198.51.100.9")
    assert not blocked.allowed
    assert blocked.retry_after == 300
    assert (await throttle.check("other@example.com", "192.0.2.0")).allowed


async def test_email_is_normalised(throttle: LoginThrottle) -> None:
    await fail(throttle, "  Victim@Example.COM ", "192.0.2.1", 1)
    await fail(throttle, "victim@example.com", "192.0.2.2", 1)
    await fail(throttle, "VICTIM@example.com", "192.0.2.3", 1)
    assert not (await throttle.check("victim@EXAMPLE.com", "192.0.2.4")).allowed


async def test_blocks_address_across_accounts(throttle: LoginThrottle) -> None:
    for i in range(3):
        await throttle.record_failure(f"user{i}@example.com", "203.0.113.5")
    assert not (await throttle.check("fresh@example.com", "203.0.113.5")).allowed
    assert (await throttle.check("fresh@example.com", "203.0.113.6")).allowed


async def test_ipv6_grouped_by_slash_64(throttle: LoginThrottle) -> None:
    for i in range(3):
        await throttle.record_failure(f"u{i}@example.com", f"2001:db8:1:2::{i + 1}")
    assert not (await throttle.check("x@example.com", "2001:db8:1:2:ffff::1")).allowed
    assert (await throttle.check("x@example.com", "2001:db8:1:3::1")).allowed


async def test_remaining_reflects_tightest_counter(throttle: LoginThrottle) -> None:
    await fail(throttle, "a@example.com", "192.0.2.1", 2)
    d = await throttle.check("b@example.com", "192.0.2.1")
    assert d.allowed
    assert d.remaining == 1


async def test_success_clears_account_but_not_address(throttle: LoginThrottle) -> None:
    await fail(throttle, "a@example.com", "192.0.2.1", 3)
    assert not (await throttle.check("a@example.com", "192.0.2.99")).allowed
    await throttle.record_success("A@example.com", "192.0.2.99")
    assert (await throttle.check("a@example.com", "192.0.2.99")).allowed
    assert not (await throttle.check("a@example.com", "192.0.2.1")).allowed


async def test_window_expiry_unblocks(throttle: LoginThrottle, clock: FakeClock) -> None:
    await fail(throttle, "a@example.com", "192.0.2.1", 3)
    clock.now += 299
    assert (await throttle.check("a@example.com", "192.0.2.1")).retry_after == 1
    clock.now += 1
    assert (await throttle.check("a@example.com", "192.0.2.1")).allowed


async def test_odd_client_address_is_still_throttled(throttle: LoginThrottle) -> None:
    for i in range(3):
        await throttle.record_failure(f"u{i}@example.com", "unknown")
    assert not (await throttle.check("x@example.com", "unknown")).allowed
