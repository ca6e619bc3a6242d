"""Bearer JWTs: HS256 only, with expiry, issuer and audience checked on every request."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from uuid import UUID

import jwt

__all__ = ["InvalidToken", "TokenService"]

ALGORITHM = "HS256"
_VERIFIED_MAX = 4096


class InvalidToken(Exception):
    pass


@dataclass(frozen=True, slots=True)
class TokenService:
    key: str
    issuer: str
    audience: str
    lifetime: timedelta
    # tokens that passed the full check, with their subject and expiry: a client sends the
    # same token on every request, and PyJWT's check costs ~60 µs of CPU each time. What is
    # checked depends on the token and the key only, except the expiry, checked on each hit.
    _verified: dict[str, tuple[UUID, float]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def issue(self, user_id: UUID, *, now: datetime | None = None) -> tuple[str, datetime]:
        issued = now or datetime.now(UTC)
        expires = issued + self.lifetime
        claims = {
            "sub": str(user_id),
            "iss": self.issuer,
            "aud": self.audience,
            "iat": issued,
            "exp": expires,
        }
        return jwt.encode(claims, self.key, algorithm=ALGORITHM), expires

    def subject(self, token: str) -> UUID:
        """The user id the token was issued to; InvalidToken for anything else."""
        known = self._verified.get(token)
        if known is not None:
            if time.time() < known[1]:  # PyJWT's rule: expired once exp <= now
                return known[0]
            self._verified.pop(token, None)
        try:
            claims = jwt.decode(
                token,
                self.key,
                algorithms=[ALGORITHM],
                issuer=self.issuer,
                audience=self.audience,
                options={"require": ["exp", "iat", "sub", "iss", "aud"]},
            )
            user_id = UUID(claims["sub"])
            expires = float(claims["exp"])
        except jwt.ExpiredSignatureError:
            raise InvalidToken("the token has expired; log in again") from None
        except (jwt.InvalidTokenError, ValueError, KeyError):
            raise InvalidToken("the token is not valid; log in again") from None
        if len(self._verified) >= _VERIFIED_MAX:
            del self._verified[next(iter(self._verified))]  # the oldest
        self._verified[token] = (user_id, expires)
        return user_id
