"""Access-control tests create many accounts; Argon2 at production cost (~0.4 s a hash on a
CI core) would dominate their run time. They keep Argon2id, at its minimum cost: these tests
are about who may do what, not about the hash's strength (tests/security covers hashing)."""

from __future__ import annotations

import pytest
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

from employeevirtual.security import passwords


@pytest.fixture(autouse=True)
def cheap_argon2(monkeypatch: pytest.MonkeyPatch) -> None:
    hasher = PasswordHash((Argon2Hasher(time_cost=1, memory_cost=8, parallelism=1),))
    monkeypatch.setattr(passwords, "_hasher", hasher)
    monkeypatch.setattr(passwords, "_DUMMY_HASH", hasher.hash("not-a-real-password"))
