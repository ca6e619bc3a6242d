"""Argon2id password hashing (pwdlib) with OWASP's recommended parameters.

pwdlib's defaults (64 MiB, t=3, p=4) cost most of a second on a 2-core server, per login; OWASP's
Password Storage Cheat Sheet lists m=19 MiB, t=2, p=1 as its first recommended configuration.
Hashes record their parameters, so changing them later still verifies old hashes.
"""

from __future__ import annotations

from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

__all__ = ["hash_password", "verify_password"]

_hasher = PasswordHash((Argon2Hasher(time_cost=2, memory_cost=19 * 1024, parallelism=1),))
# verified against when the email is unknown, so a miss costs as much as a hit
_DUMMY_HASH = _hasher.hash("not-a-real-password")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password: str, password_hash: str | None) -> bool:
    if password_hash is None:
        _hasher.verify(password, _DUMMY_HASH)
        return False
    return _hasher.verify(password, password_hash)
