"""Throttling of failed logins, after OWASP's guidance: never a lockout an attacker can
trigger for someone else.

- Per account *and* address together: the first ``free_failures`` failures of one (account,
  address) pair cost nothing; each further one makes that pair wait ``base_delay`` seconds,
  doubling per failure up to ``max_delay``. Failures are remembered ``window_seconds``. A guesser
  is slowed to a crawl, while the account's owner, from their own address, is not held up by
  failures from other addresses (rotating addresses locks nobody out).
- Per address: at most ``address_max_failures`` failures across all accounts per window (one
  address spraying many accounts); past that the address waits for the window to end.
- A success clears its pair's counter, never the address counter (else an attacker could
  reset it by logging into their own account between guesses).

Keys never contain raw emails: the normalised email is SHA-256 hashed. IPv6 addresses are
grouped by /64, since one client usually controls a whole /64.
"""

from __future__ import annotations

import hashlib
import ipaddress

from employeevirtual.security.ratelimit import RateLimitDecision, RateLimiter

__all__ = ["LoginThrottle", "account_prefix", "normalise_email"]


def normalise_email(email: str) -> str:
    return email.strip().lower()


def _account_key(email: str) -> str:
    digest = hashlib.sha256(b"ev-login:" + normalise_email(email).encode()).hexdigest()
    return f"login:acct:{digest}"


def account_prefix(email: str) -> str:
    """The start of every limiter key about an account's failed logins, whatever the address
    (the per-pair counters and their waits): an erasure removes them all by this prefix."""
    return f"login:pair:{_account_key(email).rsplit(':', 1)[1][:32]}:"


def _pair_key(email: str, client_ip: str) -> str:
    return f"{account_prefix(email)}{_ip_key(client_ip)[9:]}"


def _ip_key(client_ip: str) -> str:
    raw = client_ip.strip()
    try:
        addr = ipaddress.ip_address(raw)
    except ValueError:
        # Not an address (e.g. "unknown" or a unix socket): still throttle, but keep the
        # key bounded and free of arbitrary characters.
        return "login:ip:x" + hashlib.sha256(raw.encode()).hexdigest()[:32]
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is not None:
            return f"login:ip:{addr.ipv4_mapped}"
        return f"login:ip:{ipaddress.IPv6Network((addr, 64), strict=False)}"
    return f"login:ip:{addr}"


_UNBOUNDED = 1_000_000_000  # a counter's limit when it only counts


class LoginThrottle:
    """``check`` before verifying a password; ``record_failure``/``record_success`` after."""

    def __init__(
        self,
        limiter: RateLimiter,
        *,
        free_failures: int,
        window_seconds: int,
        base_delay: int = 1,
        max_delay: int = 300,
        address_max_failures: int = 100,
    ) -> None:
        if min(free_failures, window_seconds, base_delay, max_delay, address_max_failures) < 1:
            raise ValueError("every login throttle setting must be >= 1")
        self._limiter = limiter
        self._free = free_failures
        self._window = window_seconds
        self._base = base_delay
        self._max_delay = max_delay
        self._address_max = address_max_failures

    def delay_after(self, failures: int) -> int:
        """Seconds a pair waits after its ``failures``-th failure (0 while still free)."""
        over = failures - self._free
        if over < 0:
            return 0
        return int(min(self._max_delay, self._base * 2 ** min(over, 30)))

    async def check(self, email: str, client_ip: str) -> RateLimitDecision:
        """Refused while the pair waits out its delay, or the address is over its cap.
        Consumes nothing."""
        address = await self._peek(_ip_key(client_ip), self._address_max)
        if address.remaining <= 0:
            return self._refused(address.reset_seconds, self._address_max)
        failures = await self._pair_failures(email, client_ip)
        if failures >= self._free:
            wait = await self._peek(self._wait_key(email, client_ip, failures), 1)
            if wait.remaining <= 0:
                return self._refused(wait.reset_seconds, self._free)
        return RateLimitDecision(
            allowed=True,
            limit=self._free,
            remaining=max(self._free - failures, 0),
            reset_seconds=0,
            retry_after=None,
            window_seconds=self._window,
        )

    async def record_failure(self, email: str, client_ip: str) -> None:
        await self._limiter.hit(_ip_key(client_ip), limit=_UNBOUNDED, window_seconds=self._window)
        pair = await self._limiter.hit(
            _pair_key(email, client_ip), limit=_UNBOUNDED, window_seconds=self._window
        )
        failures = _UNBOUNDED - pair.remaining
        delay = self.delay_after(failures)
        if delay:
            await self._limiter.hit(
                self._wait_key(email, client_ip, failures), limit=1, window_seconds=delay
            )

    async def record_success(self, email: str, client_ip: str) -> None:
        await self._limiter.reset(_pair_key(email, client_ip))

    def _refused(self, retry: int, limit: int) -> RateLimitDecision:
        retry = max(int(retry), 1)
        return RateLimitDecision(
            allowed=False,
            limit=limit,
            remaining=0,
            reset_seconds=retry,
            retry_after=retry,
            window_seconds=self._window,
        )

    async def _pair_failures(self, email: str, client_ip: str) -> int:
        peek = await self._peek(_pair_key(email, client_ip), _UNBOUNDED)
        return _UNBOUNDED - peek.remaining

    async def _peek(self, key: str, limit: int) -> RateLimitDecision:
        return await self._limiter.hit(key, limit=limit, window_seconds=self._window, cost=0)

    @staticmethod
    def _wait_key(email: str, client_ip: str, failures: int) -> str:
        return f"{_pair_key(email, client_ip)}:wait:{failures}"
