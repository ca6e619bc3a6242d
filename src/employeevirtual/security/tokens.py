"""Bearer JWTs: HS256 only, with expiry, issuer and audience checked on every request."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID

import jwt

__all__ = ["InvalidToken", "TokenService"]

ALGORITHM = "HS256"


class InvalidToken(Exception):
    pass


@dataclass(frozen=True, slots=True)
class TokenService:
    key: str
    issuer: str
    audience: str
    lifetime: timedelta

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
        try:
            claims = jwt.decode(
                token,
                self.key,
                algorithms=[ALGORITHM],
                issuer=self.issuer,
                audience=self.audience,
                options={"require": ["exp", "iat", "sub", "iss", "aud"]},
            )
            return UUID(claims["sub"])
        except jwt.ExpiredSignatureError:
            raise InvalidToken("the token has expired; log in again") from None
        except (jwt.InvalidTokenError, ValueError, KeyError):
            raise InvalidToken("the token is not valid; log in again") from None
