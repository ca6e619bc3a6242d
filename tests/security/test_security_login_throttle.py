"""Login throttle over the in-process limiter (fake clock): growing delays per account+address,
a separate cap per address, and no lockout anyone can cause from other addresses."""

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
    return LoginThrottle(
        InProcessRateLimiter(clock=clock),
        free_failures=3,
        window_seconds=300,
        base_delay=1,
        max_delay=8,
        address_max_failures=10,
    )


async def fail(throttle: LoginThrottle, email: str, ip: str, times: int) -> None:
    for _ in range(times):
        await throttle.record_failure(email, ip)


async def test_check_consumes_nothing(throttle: LoginThrottle) -> None:
    for _ in range(10):
        d = await throttle.check("a@example.com", "192.0.2.1")
        assert d.allowed
        assert d.remaining == 3


async def test_delays_grow_per_account_and_address(
    throttle: LoginThrottle, clock: FakeClock
) -> None:
    email, ip = "victim@example.com", "192.0.2.1"
    await fail(throttle, email, ip, 2)
    assert (await throttle.check(email, ip)).allowed
    waits = []
    for _ in range(5):  # failures 3..7: 1, 2, 4, 8, 8 (the cap) seconds
        await throttle.record_failure(email, ip)
        blocked = await throttle.check(email, ip)
        assert not blocked.allowed
        waits.append(blocked.retry_after)
        clock.now += blocked.retry_after or 0
        assert (await throttle.check(email, ip)).allowed
    assert waits == [1, 2, 4, 8, 8]
    assert [throttle.delay_after(n) for n in range(1, 9)] == [0, 0, 1, 2, 4, 8, 8, 8]


async def test_failures_from_other_addresses_lock_nobody_out(throttle: LoginThrottle) -> None:
    for i in range(50):  # an attacker rotating addresses
        await throttle.record_failure("victim@example.com", f"198.51.100.{i}")
    # the owner, from their own address, is not held up at all
    assert (await throttle.check("victim@example.com", "192.0.2.77")).allowed


async def test_email_is_normalised(throttle: LoginThrottle) -> None:
    await fail(throttle, "  Victim@Example.COM ", "192.0.2.1", 1)
    await fail(throttle, "victim@example.com", "192.0.2.1", 1)
    await fail(throttle, "VICTIM@example.com", "192.0.2.1", 1)
    assert not (await throttle.check("victim@EXAMPLE.com", "192.0.2.1")).allowed


async def test_address_cap_across_accounts(throttle: LoginThrottle) -> None:
    for i in range(10):
        await throttle.record_failure(f"user{i}@example.com", "203.0.113.5")
    refused = await throttle.check("fresh@example.com", "203.0.113.5")
    assert not refused.allowed and refused.retry_after == 300
    assert (await throttle.check("fresh@example.com", "203.0.113.6")).allowed


async def test_ipv6_grouped_by_slash_64(throttle: LoginThrottle) -> None:
    for i in range(10):
        await throttle.record_failure(f"u{i}@example.com", f"2001:db8:1:2::{i + 1}")
    assert not (await throttle.check("x@example.com", "2001:db8:1:2:ffff::1")).allowed
    assert (await throttle.check("x@example.com", "2001:db8:1:3::1")).allowed


async def test_success_clears_the_pair_but_not_the_address(throttle: LoginThrottle) -> None:
    await fail(throttle, "a@example.com", "192.0.2.1", 3)
    assert not (await throttle.check("a@example.com", "192.0.2.1")).allowed
    await throttle.record_success("A@example.com", "192.0.2.1")
    assert (await throttle.check("a@example.com", "192.0.2.1")).allowed
    await fail(throttle, "b@example.com", "192.0.2.1", 7)  # 10 from this address in all
    assert not (await throttle.check("a@example.com", "192.0.2.1")).allowed


async def test_window_expiry_forgets_failures(throttle: LoginThrottle, clock: FakeClock) -> None:
    await fail(throttle, "a@example.com", "192.0.2.1", 6)
    clock.now += 300
    decision = await throttle.check("a@example.com", "192.0.2.1")
    assert decision.allowed and decision.remaining == 3


async def test_odd_client_address_is_still_throttled(throttle: LoginThrottle) -> None:
    for i in range(10):
        await throttle.record_failure(f"u{i}@example.com", "unknown")
    assert not (await throttle.check("x@example.com", "unknown")).allowed
