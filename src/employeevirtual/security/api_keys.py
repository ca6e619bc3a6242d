"""API keys for server-to-server callers.

A key is ``ev_live_`` followed by 32 random bytes, base64url-encoded (43 characters). Only
its SHA-256 digest is stored, and lookups go by digest. A fast unsalted hash is right here,
unlike for passwords: with 256 bits of entropy a key cannot be brute-forced from its digest,
so a slow KDF would only make every authenticated request expensive, and a deterministic
digest is what allows an indexed lookup. The stored ``prefix`` (first 12 characters) is
shown in listings so people can recognise a key; it carries 4 random characters, far too
few to help an attacker.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

__all__ = [
    "API_KEY_PREFIX",
    "DISPLAY_PREFIX_LENGTH",
    "GeneratedKey",
    "generate_api_key",
    "hash_api_key",
    "looks_like_api_key",
    "verify_api_key",
]

API_KEY_PREFIX = "ev_live_"
DISPLAY_PREFIX_LENGTH = 12
_RANDOM_BYTES = 32
_KEY_RE = re.compile(rf"{API_KEY_PREFIX}[A-Za-z0-9_-]{{43}}")


@dataclass(frozen=True)
class GeneratedKey:
    plaintext: str
    """Shown to the user once; never stored or logged."""
    prefix: str
    digest: str

    def __repr__(self) -> str:  # keep the secret out of logs and tracebacks
        return f"GeneratedKey(prefix={self.prefix!r}, digest={self.digest!r})"


def generate_api_key() -> GeneratedKey:
    plaintext = API_KEY_PREFIX + secrets.token_urlsafe(_RANDOM_BYTES)
    return GeneratedKey(
        plaintext=plaintext,
        prefix=plaintext[:DISPLAY_PREFIX_LENGTH],
        digest=hash_api_key(plaintext),
    )


def hash_api_key(plaintext: str) -> str:
    """Hex SHA-256 of the full key: the value to store and to look up by."""
    return hashlib.sha256(plaintext.encode()).hexdigest()


def verify_api_key(plaintext: str, digest: str) -> bool:
    """Constant-time check of a presented key against a stored digest."""
    return hmac.compare_digest(hash_api_key(plaintext).encode(), digest.lower().encode())


def looks_like_api_key(token: str) -> bool:
    """True for our key format, False for anything else (notably a JWT: three base64url
    parts joined by dots). A format check only: it does not mean the key is valid."""
    return _KEY_RE.fullmatch(token) is not None
