"""API keys: shown once, stored as a digest, accepted in both headers, last use recorded
at most once per interval, revocable at once, and bounded per user."""

from __future__ import annotations

from datetime import timedelta

import httpx
from sqlalchemy import select, update

from employeevirtual.runtime import Runtime
from employeevirtual.security.api_keys import hash_api_key
from employeevirtual.settings import Settings
from employeevirtual.stores.sql import tables
from employeevirtual.stores.sql.migrate import render_sql
from support.access import account, api_key, app_client, audit_rows, counts


async def _stored(runtime: Runtime) -> list[dict[str, object]]:
    async with runtime.engine.connect() as conn:
        return [dict(r._mapping) for r in await conn.execute(select(tables.api_keys))]


async def test_key_is_shown_once_and_stored_as_digest(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    user = await account(client)
    created = await api_key(client, user, "deploy bot")
    key = created["key"]
    assert key.startswith("ev_live_")
    assert created["prefix"] == key[:12]
    assert created["last_used_at"] is None

    listed = (await client.get("/api/api-keys", headers=user.headers)).json()
    assert [k["id"] for k in listed] == [created["id"]]
    assert "key" not in listed[0]
    assert key not in (await client.get("/api/api-keys", headers=user.headers)).text

    (row,) = await _stored(runtime)
    assert row["digest"] == hash_api_key(key)
    assert key not in repr(row)
    assert len(await audit_rows(runtime, "api_key.create")) == 1


async def test_key_works_as_bearer_and_x_api_key(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    user = await account(client)
    key = (await api_key(client, user))["key"]
    for headers in ({"Authorization": f"Bearer {key}"}, {"X-API-Key": key}):
        r = await client.get("/api/users/me", headers=headers)
        assert r.status_code == 200, r.text
        assert r.json()["id"] == user.id
    # a key can act: create an agent and chat with it
    r = await client.post("/api/agents", json={"name": "Bot"}, headers={"X-API-Key": key})
    assert r.status_code == 201
    r = await client.post(
        "/api/chat/agent",
        json={"message": "hi", "agent_id": r.json()["id"]},
        headers={"X-API-Key": key},
    )
    assert r.status_code == 200, r.text


async def test_unknown_key_is_401(client: httpx.AsyncClient) -> None:
    forged = "ev_live_" + "A" * 43
    for headers in ({"Authorization": f"Bearer {forged}"}, {"X-API-Key": forged}):
        r = await client.get("/api/users/me", headers=headers)
        assert r.status_code == 401
        assert "API key is not valid" in r.json()["detail"]


async def test_last_used_is_written_at_most_once_per_interval(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    user = await account(client)
    key = (await api_key(client, user))["key"]
    headers = {"X-API-Key": key}
    assert (await client.get("/api/users/me", headers=headers)).status_code == 200
    (first,) = await _stored(runtime)
    assert first["last_used_at"] is not None
    for _ in range(5):
        assert (await client.get("/api/users/me", headers=headers)).status_code == 200
    (same,) = await _stored(runtime)
    assert same["last_used_at"] == first["last_used_at"]  # no write inside the interval

    # once the interval has passed, the next use records the time again
    interval = timedelta(seconds=runtime.settings.api_key_touch_seconds + 1)
    earlier = first["last_used_at"] - interval  # type: ignore[operator]
    async with runtime.engine.begin() as conn:
        await conn.execute(update(tables.api_keys).values(last_used_at=earlier))
    assert (await client.get("/api/users/me", headers=headers)).status_code == 200
    (later,) = await _stored(runtime)
    assert later["last_used_at"] > first["last_used_at"]  # type: ignore[operator]
    listed = (await client.get("/api/api-keys", headers=user.headers)).json()
    assert listed[0]["last_used_at"] is not None


async def test_revoked_key_stops_working_at_once(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    user = await account(client)
    created = await api_key(client, user)
    headers = {"Authorization": f"Bearer {created['key']}"}
    assert (await client.get("/api/users/me", headers=headers)).status_code == 200
    r = await client.delete(f"/api/api-keys/{created['id']}", headers=user.headers)
    assert r.status_code == 204
    r = await client.get("/api/users/me", headers=headers)
    assert r.status_code == 401
    assert (await client.get("/api/api-keys", headers=user.headers)).json() == []
    # revoking twice: the key is no longer there
    r = await client.delete(f"/api/api-keys/{created['id']}", headers=user.headers)
    assert r.status_code == 404
    assert len(await audit_rows(runtime, "api_key.revoke")) == 1


async def test_keys_per_user_are_bounded_and_nothing_written_past_it(
    settings: Settings,
) -> None:
    async with app_client(settings, max_api_keys_per_user=2) as (client, runtime):
        await _bounded(client, runtime)


async def _bounded(client: httpx.AsyncClient, runtime: Runtime) -> None:
    user = await account(client)
    await api_key(client, user, "one")
    await api_key(client, user, "two")
    before = await counts(runtime)
    r = await client.post("/api/api-keys", json={"name": "three"}, headers=user.headers)
    assert r.status_code == 409
    assert "revoke one first" in r.json()["detail"]
    assert await counts(runtime) == before


def test_api_keys_migration_compiles_for_sql_server_and_postgresql() -> None:
    for url in ("mssql+pyodbc://server/db", "postgresql+asyncpg://server/db"):
        ddl = render_sql(url)
        assert "CREATE TABLE empl.api_keys" in ddl
        assert "UQ_api_keys_digest" in ddl
        assert "0002_api_keys" in ddl
