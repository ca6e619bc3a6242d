from __future__ import annotations

import base64
import json
import re

import pytest

from employeevirtual.security.api_keys import (
    generate_api_key,
    hash_api_key,
    looks_like_api_key,
    verify_api_key,
)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _fake_jwt() -> str:
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    payload = _b64(json.dumps({"sub": "ev_live_123", "exp": 1}).encode())
    return f"{header}.{payload}.{_b64(b'x' * 32)}"


def test_format_prefix_and_digest() -> None:
    key = generate_api_key()
    assert re.fullmatch(r"ev_live_[A-Za-z0-9_-]{43}", key.plaintext)
    assert key.prefix == key.plaintext[:12]
    assert key.prefix.startswith("ev_live_")
    assert re.fullmatch(r"[0-9a-f]{64}", key.digest)
    assert key.digest == hash_api_key(key.plaintext)


def test_keys_are_unique() -> None:
    assert len({generate_api_key().plaintext for _ in range(100)}) == 100


def test_digest_is_stable() -> None:
    expected = "b3f9e5c386b661991e4bf324bebd3780b29f190099911ae620405e6940148cdc"
    assert hash_api_key("ev_live_abc") == expected
    assert hash_api_key("ev_live_abc") != hash_api_key("ev_live_abd")


def test_verify() -> None:
    key = generate_api_key()
    assert verify_api_key(key.plaintext, key.digest)
    assert verify_api_key(key.plaintext, key.digest.upper())
    assert not verify_api_key(generate_api_key().plaintext, key.digest)
    assert not verify_api_key(key.plaintext, "é" * 64)


def test_repr_hides_plaintext() -> None:
    key = generate_api_key()
    assert key.plaintext not in repr(key)


def test_looks_like_api_key_accepts_generated_keys() -> None:
    for _ in range(50):
        assert looks_like_api_key(generate_api_key().plaintext)


@pytest.mark.parametrize(
    "token",
    [
        _fake_jwt(),
        "",
        "ev_live_",
        "ev_live_short",
        "ev_test_" + "a" * 43,
        "ev_live_" + "a" * 42 + ".",
        "ev_live_" + "a" * 44,
        " ev_live_" + "a" * 43,
        "ev_live_" + "a" * 43 + "\n",
    ],
)
def test_looks_like_api_key_rejects_other_tokens(token: str) -> None:
    assert not looks_like_api_key(token)
