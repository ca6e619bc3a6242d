"""A turn whose COMMIT fails frees its Idempotency-Key at once (issue 9, item 1).

The failure is real and deterministic: a deferred check on ``messages`` that fails once, at
COMMIT, after the key's response was already rendered inside the transaction. PostgreSQL: a
deferred constraint trigger raising on the first row it sees. SQLite: a deferred foreign key a
trigger breaks once (SQLite checks deferred keys at COMMIT).
"""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import event, func, select, text

from employeevirtual.runtime import Runtime
from employeevirtual.stores.sql.tables import messages
from support.api import create_agent, register_and_login

CHAT = "/api/chat/agent"


async def fail_next_commit(runtime: Runtime) -> None:
    """The next transaction inserting into ``messages`` fails at COMMIT; later ones succeed."""
    engine = runtime.engine
    if engine.dialect.name == "postgresql":
        schema = f'"{runtime.settings.database_schema}"'
        async with engine.begin() as conn:
            await conn.execute(text(f"CREATE SEQUENCE {schema}.ev_fail_once"))
            await conn.execute(
                text(
                    f"CREATE FUNCTION {schema}.ev_fail_once() RETURNS trigger LANGUAGE plpgsql AS "
                    f"$$ BEGIN IF nextval('{schema}.ev_fail_once') = 1 THEN "
                    "RAISE EXCEPTION 'injected failure at COMMIT'; END IF; RETURN NULL; END $$"
                )
            )
            await conn.execute(
                text(
                    f"CREATE CONSTRAINT TRIGGER ev_fail_once AFTER INSERT ON {schema}.messages "
                    "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW "
                    f"EXECUTE FUNCTION {schema}.ev_fail_once()"
                )
            )
        return
    calls = {"n": 0}

    def first_call() -> int:  # state outside the transaction, which the failure rolls back
        calls["n"] += 1
        return 1 if calls["n"] == 1 else 0

    @event.listens_for(engine.sync_engine, "connect")
    def _register(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.create_function("ev_fail_once", 0, first_call)

    await engine.dispose()  # every connection from now on knows the function
    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE ev_fault_parent (id INTEGER PRIMARY KEY)"))
        await conn.execute(
            text(
                "CREATE TABLE ev_fault_child (parent INTEGER REFERENCES ev_fault_parent(id) "
                "DEFERRABLE INITIALLY DEFERRED)"
            )
        )
        await conn.execute(
            text(
                "CREATE TRIGGER ev_fail_once AFTER INSERT ON messages WHEN ev_fail_once() = 1 "
                "BEGIN INSERT INTO ev_fault_child VALUES (42); END"
            )
        )


async def test_a_failed_commit_releases_its_key_so_the_retry_runs_at_once(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    headers = await register_and_login(client)
    agent = (await create_agent(client, headers))["id"]
    await fail_next_commit(runtime)
    keyed = {**headers, "Idempotency-Key": "commit-fails-once"}
    params = {"message": "hello", "agent_id": agent}

    first = await client.post(CHAT, params=params, headers=keyed)
    # nothing was written: 503 (the database failed) or 409 (a constraint refused it)
    assert first.status_code in (409, 503), first.text
    assert "nothing was written" in first.json()["detail"]
    async with runtime.engine.connect() as conn:
        held = (await conn.execute(select(func.count()).select_from(messages))).scalar_one()
    assert held == 0

    # before the fix: 409 "still being processed" for the whole lease (agent timeout + 30 s)
    retry = await client.post(CHAT, params=params, headers=keyed)
    assert retry.status_code == 200, retry.text
    assert "Idempotent-Replayed" not in retry.headers
    replay = await client.post(CHAT, params=params, headers=keyed)
    assert replay.status_code == 200
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.json() == retry.json()
    async with runtime.engine.connect() as conn:
        held = (await conn.execute(select(func.count()).select_from(messages))).scalar_one()
    assert held == 2  # one turn: the user's message and the reply, once


async def test_the_openai_door_releases_its_key_on_a_failed_commit_too(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    headers = await register_and_login(client)
    agent = (await create_agent(client, headers))["id"]
    await fail_next_commit(runtime)
    keyed = {**headers, "Idempotency-Key": "door-commit-fails-once"}
    body = {"model": agent, "messages": [{"role": "user", "content": "hello"}]}
    first = await client.post("/v1/chat/completions", json=body, headers=keyed)
    assert first.status_code in (409, 503), first.text
    retry = await client.post("/v1/chat/completions", json=body, headers=keyed)
    assert retry.status_code == 200, retry.text
    async with runtime.engine.connect() as conn:
        held = (await conn.execute(select(func.count()).select_from(messages))).scalar_one()
    assert held == 2
