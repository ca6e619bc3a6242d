"""Inputs that answered 500 (issue 8, item 7) and a corpus of hostile strings: every one is a
4xx with a message, or is stored exactly as sent; never a 500. Run on every backend (NUL is what
PostgreSQL refuses)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from employeevirtual.runtime import Runtime
from employeevirtual.settings import Settings
from support.access import app_client
from support.api import PASSWORD, create_agent, register_and_login
from support.hostile import (
    BAD_BEFORE,
    BAD_CURSORS,
    NON_JSON_NUMBERS,
    UNSTORABLE,
    hostile_strings,
    naive_cursor,
    storable,
)

FORM = {"content-type": "application/x-www-form-urlencoded"}
SECURITY_HEADERS = ("X-Content-Type-Options", "Content-Security-Policy", "X-Request-ID")


def _dump(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload).encode()  # ASCII escapes: lone surrogates survive as \\udXXX


def _raw_json(fields: dict[str, str]) -> bytes:
    """A JSON object whose values are raw JSON texts (so NaN stays a bare token)."""
    return ("{" + ",".join(f'"{k}":{v}' for k, v in fields.items()) + "}").encode()


def _assert_4xx(r: httpx.Response, *, expected: str | None = None) -> None:
    assert 400 <= r.status_code < 500, (r.status_code, r.text[:300])
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert body["detail"], body
    if expected:
        assert expected in r.text, r.text[:300]
    for name in SECURITY_HEADERS:
        assert name in r.headers, name


@pytest.mark.parametrize("token", NON_JSON_NUMBERS)
async def test_nan_and_infinity_are_422_everywhere(client: httpx.AsyncClient, token: str) -> None:
    json_ct = {"content-type": "application/json"}
    # without logging in
    body = _raw_json({"email": token, "password": json.dumps(PASSWORD), "name": '"x"'})
    r = await client.post("/api/auth/register", content=body, headers=json_ct)
    _assert_4xx(r, expected="NaN or Infinity")
    headers = {**await register_and_login(client), **json_ct}
    body = _raw_json({"name": '"a"', "model_settings": f'{{"temperature": {token}}}'})
    r = await client.post("/api/agents", content=body, headers=headers)
    _assert_4xx(r, expected="NaN or Infinity")
    r = await client.post("/api/chat/agent", content=_raw_json({"message": token}), headers=headers)
    _assert_4xx(r)


@pytest.mark.parametrize("bad", UNSTORABLE)
async def test_nul_and_lone_surrogates_are_422_everywhere(
    client: httpx.AsyncClient, runtime: Runtime, bad: str
) -> None:
    json_ct = {"content-type": "application/json"}
    body = json.dumps({"email": "a@example.com", "password": PASSWORD, "name": bad})
    r = await client.post("/api/auth/register", content=body.encode(), headers=json_ct)
    _assert_4xx(r, expected="body.name")
    body = json.dumps({"email": bad, "password": PASSWORD, "name": "x"})
    r = await client.post("/api/auth/register", content=body.encode(), headers=json_ct)
    _assert_4xx(r)
    # form fields and query strings cannot carry a lone surrogate (percent-encoded UTF-8 has
    # none: the server decodes such bytes to U+FFFD); a NUL they can
    quoted = quote(bad, errors="surrogatepass")
    r = await client.post(
        "/api/auth/login",
        content=f"username={quoted}&password=x".encode(),
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    if "\x00" in bad:
        _assert_4xx(r, expected="NUL")
    else:
        assert r.status_code == 401, r.text
    headers = await register_and_login(client)
    agent = await create_agent(client, headers)
    for path, payload in (
        ("/api/agents", {"name": "n", "instructions": bad}),
        ("/api/chat/agent", {"message": bad, "agent_id": agent["id"]}),
        ("/api/api-keys", {"name": bad}),
    ):
        r = await client.post(
            path, content=json.dumps(payload).encode(), headers={**headers, **json_ct}
        )
        _assert_4xx(r)
    r = await client.post(
        f"/api/chat/agent?message={quoted}&agent_id={agent['id']}", headers=headers
    )
    if "\x00" in bad:
        _assert_4xx(r, expected="NUL")
    else:
        assert r.status_code == 200, r.text  # stored as U+FFFD, a valid character
    # nothing was stored for any of them
    async with runtime.engine.connect() as conn:
        from sqlalchemy import func, select

        from employeevirtual.stores.sql.tables import messages

        stored = (await conn.execute(select(func.count()).select_from(messages))).scalar_one()
    assert stored == (0 if "\x00" in bad else 2)


async def test_strict_numbers_and_cursors(client: httpx.AsyncClient) -> None:
    headers = await register_and_login(client)
    agent = await create_agent(client, headers)
    r = await client.post(
        "/api/chat/agent", json={"message": "hi", "agent_id": agent["id"]}, headers=headers
    )
    cid = r.json()["conversation_id"]
    for before in BAD_BEFORE:
        r = await client.get(
            f"/api/conversations/{cid}/messages", params={"before": before}, headers=headers
        )
        _assert_4xx(r, expected="before is not valid")
    for cursor in (*BAD_CURSORS, naive_cursor()):
        for path in ("/api/conversations", "/api/agents"):
            r = await client.get(path, params={"cursor": cursor}, headers=headers)
            _assert_4xx(r, expected="cursor")
    for limit in ("²", "①", "7" * 5000, "NaN", "1e3", "-1", "0"):
        r = await client.get("/api/conversations", params={"limit": limit}, headers=headers)
        _assert_4xx(r)


async def test_the_hostile_corpus_never_answers_500(settings: Settings) -> None:
    # limits raised: every request must reach the code under test, not a 429
    async with app_client(
        settings, rate_limit_global=100_000, rate_limit_chat=100_000, login_max_failures=100_000
    ) as (client, _runtime):
        await _corpus(client)


async def _corpus(client: httpx.AsyncClient) -> None:
    headers = await register_and_login(client)
    agent = await create_agent(client, headers)
    json_headers = {**headers, "content-type": "application/json"}
    strings = hostile_strings()
    assert len(strings) > 250
    for text in strings:
        ok = storable(text)
        # an agent's name and instructions: stored exactly as sent, or a 4xx
        payload: dict[str, Any] = {"name": text[:200] or "x", "instructions": text}
        r = await client.post("/api/agents", content=_dump(payload), headers=json_headers)
        assert r.status_code < 500, (text[:50], r.status_code, r.text[:200])
        if r.status_code == 201:
            assert ok, text[:50]
            got = (await client.get(f"/api/agents/{r.json()['id']}", headers=headers)).json()
            assert got["instructions"] == text
            await client.delete(f"/api/agents/{r.json()['id']}", headers=headers)
        else:
            _assert_4xx(r)
        # as a chat message (body), a query value, a cursor, a `before`, a login name
        r = await client.post(
            "/api/chat/agent",
            content=_dump({"message": text, "agent_id": agent["id"]}),
            headers=json_headers,
        )
        assert r.status_code in (200, 422), (text[:50], r.status_code, r.text[:200])
        if r.status_code == 200:
            cid = r.json()["conversation_id"]
            got = (await client.get(f"/api/conversations/{cid}/messages", headers=headers)).json()
            assert got["messages"][0]["content"] == text
        for path, params in (
            ("/api/conversations", {"cursor": text}),
            ("/api/agents", {"cursor": text}),
            ("/api/conversations", {"limit": text}),
            ("/api/conversations", {"agent_id": text}),
        ):
            query = "&".join(f"{k}={quote(v, errors='surrogatepass')}" for k, v in params.items())
            r = await client.get(f"{path}?{query}", headers=headers)
            assert r.status_code < 500 and r.status_code != 429, (path, text[:50], r.status_code)
    # logins hash a password each (slow on purpose): the unstorable ones and a sample
    for text in (*UNSTORABLE, *strings[::10]):
        form = f"username={quote(text, errors='surrogatepass')}&password=x"
        r = await client.post("/api/auth/login", content=form.encode(), headers=FORM)
        assert r.status_code in (401, 422), (text[:50], r.status_code)
