"""Throttling of failed logins, per account and per client address.

Two independent failure counters share one fixed window: one per account (stops
guessing one user's password from many addresses) and one per client address (stops one
address spraying many accounts). A successful login clears only the account counter:
clearing the address counter too would let an attacker reset it by logging into their own
account between guesses.

Keys never contain raw emails: the normalised email is SHA-256 hashed. IPv6 addresses are
grouped by /64, since one client usually controls a whole /64.
"""

from __future__ import annotations

import hashlib
import ipaddress

from employeevirtual.security.ratelimit import RateLimitDecision, RateLimiter

__all__ = ["LoginThrottle", "account_key", "normalise_email"]


def normalise_email(email: str) -> str:
    return email.strip().lower()


def _account_key(email: str) -> str:
    digest = hashlib.sha256(b"ev-login:" + normalise_email(email).encode()).hexdigest()
    return f"login:acct:{digest}"


def account_key(email: str) -> str:
    """The limiter key of an account's failed logins (its erasure removes it)."""
    return _account_key(email)


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


class LoginThrottle:
    """``check`` before verifying a password; ``record_failure``/``record_success`` after."""

    def __init__(self, limiter: RateLimiter, *, max_failures: int, window_seconds: int) -> None:
        if max_failures < 1 or window_seconds < 1:
            raise ValueError("max_failures and window_seconds must be >= 1")
        self._limiter = limiter
        self._max = max_failures
        self._window = window_seconds

    async def check(self, email: str, client_ip: str) -> RateLimitDecision:
        """Refused once either counter has reached ``max_failures``. Consumes nothing."""
        decisions = [await self._peek(key) for key in self._keys(email, client_ip)]
        blocked = [d for d in decisions if d.remaining <= 0]
        if blocked:
            reset = max(d.reset_seconds for d in blocked)
            return RateLimitDecision(
                allowed=False,
                limit=self._max,
                remaining=0,
                reset_seconds=reset,
                retry_after=reset,
                window_seconds=self._window,
            )
        tightest = min(decisions, key=lambda d: (d.remaining, -d.reset_seconds))
        return RateLimitDecision(
            allowed=True,
            limit=self._max,
            remaining=tightest.remaining,
            reset_seconds=tightest.reset_seconds,
            retry_after=None,
            window_seconds=self._window,
        )

    async def record_failure(self, email: str, client_ip: str) -> None:
        for key in self._keys(email, client_ip):
            await self._limiter.hit(key, limit=self._max, window_seconds=self._window)

    async def record_success(self, email: str, client_ip: str) -> None:
        await self._limiter.reset(_account_key(email))

    async def _peek(self, key: str) -> RateLimitDecision:
        return await self._limiter.hit(key, limit=self._max, window_seconds=self._window, cost=0)

    @staticmethod
    def _keys(email: str, client_ip: str) -> tuple[str, str]:
        return _account_key(email), _ip_key(client_ip)
