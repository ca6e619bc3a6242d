"""Bearer tokens: every way a token can be wrong is a 401 with a message saying so."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest
from sqlalchemy import delete

from employeevirtual.runtime import Runtime
from employeevirtual.security.tokens import InvalidToken, TokenService
from employeevirtual.stores.sql import tables
from support.access import account


def _claims(runtime: Runtime, sub: str, **overrides: object) -> dict[str, object]:
    now = datetime.now(UTC)
    claims: dict[str, object] = {
        "sub": sub,
        "iss": runtime.settings.jwt_issuer,
        "aud": runtime.settings.jwt_audience,
        "iat": now,
        "exp": now + timedelta(minutes=5),
    }
    claims.update(overrides)
    return claims


async def _me(client: httpx.AsyncClient, token: str | None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return await client.get("/api/users/me", headers=headers)


async def test_valid_token_is_accepted(client: httpx.AsyncClient) -> None:
    user = await account(client)
    r = await client.get("/api/users/me", headers=user.headers)
    assert r.status_code == 200, r.text
    assert r.json()["id"] == user.id


CASES = {
    "none": "missing bearer token",
    "empty": "missing bearer token",
    "malformed": "not valid",
    "alg_none": "not valid",
    "wrong_key": "not valid",
    "expired": "expired",
    "wrong_audience": "not valid",
    "wrong_issuer": "not valid",
    "no_expiry": "not valid",
    "hs512": "not valid",
    "not_a_uuid_subject": "not valid",
    "unknown_user": "no longer exists",
}


def _token(case: str, runtime: Runtime, user_id: str) -> str | None:
    key = runtime.settings.signing_key
    claims = _claims(runtime, user_id)
    past = datetime.now(UTC) - timedelta(hours=2)
    tokens: dict[str, str | None] = {
        "none": None,
        "empty": "",
        "malformed": "not.a.jwt",
        "alg_none": jwt.encode(claims, key=None, algorithm="none"),
        "wrong_key": jwt.encode(claims, "another-key-of-sufficient-length-0123456789", "HS256"),
        "expired": jwt.encode(
            {**claims, "iat": past, "exp": past + timedelta(minutes=5)}, key, "HS256"
        ),
        "wrong_audience": jwt.encode({**claims, "aud": "some-other-api"}, key, "HS256"),
        "wrong_issuer": jwt.encode({**claims, "iss": "someone-else"}, key, "HS256"),
        "no_expiry": jwt.encode({k: v for k, v in claims.items() if k != "exp"}, key, "HS256"),
        "hs512": jwt.encode(claims, key + key, "HS512"),  # right secret, algorithm not allowed
        "not_a_uuid_subject": jwt.encode({**claims, "sub": "admin"}, key, "HS256"),
        "unknown_user": jwt.encode({**claims, "sub": str(uuid.uuid4())}, key, "HS256"),
    }
    return tokens[case]


async def test_bad_tokens_are_401_with_a_clear_message(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    user = await account(client)
    wrong: list[str] = []
    for case, message in CASES.items():
        r = await _me(client, _token(case, runtime, user.id))
        ok = (
            r.status_code == 401
            and message in r.json()["detail"]
            and r.headers.get("WWW-Authenticate") == "Bearer"
            and user.id not in r.text
        )
        if not ok:
            wrong.append(f"{case}: {r.status_code} {r.text}")
    assert not wrong, "\n".join(wrong)


async def test_token_of_deleted_user_is_401(client: httpx.AsyncClient, runtime: Runtime) -> None:
    await account(client, name="Admin")  # the first account is the admin; keep it
    user = await account(client)
    assert (await client.get("/api/users/me", headers=user.headers)).status_code == 200
    async with runtime.engine.begin() as conn:
        await conn.execute(
            delete(tables.audit_log).where(tables.audit_log.c.actor_id == uuid.UUID(user.id))
        )
        await conn.execute(delete(tables.users).where(tables.users.c.id == uuid.UUID(user.id)))
    r = await client.get("/api/users/me", headers=user.headers)
    assert r.status_code == 401
    assert "no longer exists" in r.json()["detail"]


async def test_token_and_api_key_together_is_401(client: httpx.AsyncClient) -> None:
    user = await account(client)
    r = await client.post("/api/api-keys", json={"name": "k"}, headers=user.headers)
    key = r.json()["key"]
    r = await client.get("/api/users/me", headers={**user.headers, "X-API-Key": key})
    assert r.status_code == 401
    assert "one credential" in r.json()["detail"]


async def test_x_api_key_holding_a_jwt_is_401(client: httpx.AsyncClient) -> None:
    user = await account(client)
    token = user.headers["Authorization"].removeprefix("Bearer ")
    r = await client.get("/api/users/me", headers={"X-API-Key": token})
    assert r.status_code == 401
    assert "ev_live_" in r.json()["detail"]


def _service() -> TokenService:
    return TokenService(key="k" * 48, issuer="ev", audience="ev-api", lifetime=timedelta(hours=1))


def test_a_token_is_fully_checked_once_then_remembered(monkeypatch: pytest.MonkeyPatch) -> None:
    tokens = _service()
    user = uuid.uuid4()
    token, _ = tokens.issue(user)
    decoded: list[str] = []
    real = jwt.decode

    def counting(token: str, *args: Any, **kwargs: Any) -> Any:
        decoded.append(token)
        return real(token, *args, **kwargs)

    monkeypatch.setattr(jwt, "decode", counting)
    assert [tokens.subject(token) for _ in range(3)] == [user] * 3
    assert decoded == [token]
    forged = jwt.encode(_plain_claims(str(user)), "another-key-" * 4, algorithm="HS256")
    for _ in range(2):  # a refusal is never remembered: each try is checked again
        with pytest.raises(InvalidToken, match="not valid"):
            tokens.subject(forged)
    assert decoded == [token, forged, forged]


def test_a_remembered_token_still_expires() -> None:
    tokens = _service()
    user = uuid.uuid4()
    # issued so that it expires within 4 s (exp is whole seconds): time to check it once first
    token, expires = tokens.issue(user, now=datetime.now(UTC) - timedelta(hours=1, seconds=-4))
    assert tokens.subject(token) == user
    time.sleep(max(0.0, expires.timestamp() - time.time()) + 0.05)
    with pytest.raises(InvalidToken, match="expired"):
        tokens.subject(token)


def _plain_claims(sub: str) -> dict[str, object]:
    now = datetime.now(UTC)
    return {"sub": sub, "iss": "ev", "aud": "ev-api", "iat": now, "exp": now + timedelta(hours=1)}
