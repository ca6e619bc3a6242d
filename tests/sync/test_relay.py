"""The relay replays what SQL committed and MongoDB missed: real fail points, real stores."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httpx
import pytest
from sqlalchemy.dialects import mssql, postgresql

from employeevirtual.chat.turn import TurnSucceeded
from employeevirtual.runtime import Runtime
from employeevirtual.stores.mongo.secantus import SecantusServer
from employeevirtual.stores.sql.sync import SyncRepository
from employeevirtual.sync.relay import Relay
from support import factories
from support.api import create_agent, register_and_login
from support.people import erase
from support.stores import InsertLater, mongo_failing, mongo_messages, sql_messages, sync_state


async def _turns(
    client: httpx.AsyncClient, headers: dict[str, str], agent_id: str, n: int
) -> list[dict[str, Any]]:
    r = await client.post(
        "/api/chat/agent", json={"message": "m0", "agent_id": agent_id}, headers=headers
    )
    assert r.status_code == 200, r.text
    bodies = [r.json()]
    cid = bodies[0]["conversation_id"]
    for i in range(1, n):
        r = await client.post(
            "/api/chat/agent", json={"message": f"m{i}", "conversation_id": cid}, headers=headers
        )
        assert r.status_code == 200, r.text
        bodies.append(r.json())
    return bodies


async def test_turns_succeed_while_mongodb_writes_fail_and_the_relay_catches_up(
    client: httpx.AsyncClient, runtime: Runtime, secantus: SecantusServer
) -> None:
    headers = await register_and_login(client)
    agent = await create_agent(client, headers)
    async with mongo_failing(secantus.url):
        bodies = await _turns(client, headers, agent["id"], 3)
        cid = bodies[0]["conversation_id"]
        r = await client.get(f"/api/conversations/{cid}/messages", headers=headers)
        assert r.status_code == 200
        assert r.json()["source"] == "sql"
        assert [m["seq"] for m in r.json()["messages"]] == [1, 2, 3, 4, 5, 6]
        await runtime.acks.flush()
        assert await sync_state(runtime, cid) == (0, 6)
        assert await mongo_messages(runtime, cid) == {}
        with pytest.raises(Exception, match="failCommand"):
            await runtime.relay.run_once()  # the relay fails too, and keeps nothing half-done
        assert await sync_state(runtime, cid) == (0, 6)

    result = await runtime.relay.run_once()
    assert (result.conversations, result.advanced, result.messages) == (1, 1, 6)
    assert await mongo_messages(runtime, cid) == await sql_messages(runtime, cid)
    assert await sync_state(runtime, cid) == (6, 6)
    doc = await runtime.documents.conversations.find_one({"_id": cid})
    assert doc is not None
    meta = doc["metadata"]
    assert (meta["message_count"], meta["last_seq"], meta["agent_runs"]) == (6, 6, 3)
    assert meta["total_tokens"] == sum(b["usage"]["total_tokens"] for b in bodies)
    assert [m["seq"] for m in doc["messages"]] == [1, 2, 3, 4, 5, 6]
    runs = await runtime.documents.analytics.find({"conversation_id": cid}).to_list()
    assert sorted(r["message_id"] for r in runs) == sorted(b["agent_message"]["id"] for b in bodies)
    assert {r["status"] for r in runs} == {"success"}
    assert sum(r["output_tokens"] for r in runs) > 0
    assert (await runtime.relay.run_once()).conversations == 0  # nothing owed any more

    # a later turn lands on top of the rebuilt document with $inc, counters stay exact
    r = await client.post(
        "/api/chat/agent", json={"message": "again", "conversation_id": cid}, headers=headers
    )
    assert r.status_code == 200
    doc = await runtime.documents.conversations.find_one({"_id": cid})
    assert doc is not None
    assert doc["metadata"]["message_count"] == 8
    await runtime.acks.flush()
    assert await sync_state(runtime, cid) == (8, 8)


async def test_relay_copies_in_bounded_batches_and_keeps_a_partial_document_write_idempotent(
    client: httpx.AsyncClient, runtime: Runtime, secantus: SecantusServer
) -> None:
    headers = await register_and_login(client)
    agent = await create_agent(client, headers)
    async with mongo_failing(secantus.url, ("update",)):  # messages land, the document does not
        bodies = await _turns(client, headers, agent["id"], 4)
    cid = bodies[0]["conversation_id"]
    assert len(await mongo_messages(runtime, cid)) == 8
    relay = Relay(runtime.engine, runtime.documents, batch_size=3, grace_seconds=0)
    result = await relay.run_once()
    assert (result.advanced, result.messages) == (1, 8)
    assert await mongo_messages(runtime, cid) == await sql_messages(runtime, cid)
    assert await runtime.documents.messages.count_documents({"conversation_id": cid}) == 8
    assert await sync_state(runtime, cid) == (8, 8)


async def test_relay_leaves_a_conversation_with_a_recent_turn_to_that_turn(
    client: httpx.AsyncClient, runtime: Runtime, secantus: SecantusServer
) -> None:
    headers = await register_and_login(client)
    agent = await create_agent(client, headers)
    async with mongo_failing(secantus.url):
        bodies = await _turns(client, headers, agent["id"], 1)
    relay = Relay(runtime.engine, runtime.documents, grace_seconds=60)
    assert (await relay.run_once()).conversations == 0
    assert (await runtime.relay.run_once()).advanced == 1  # grace 0 in these tests
    cid = bodies[0]["conversation_id"]
    assert await sync_state(runtime, cid) == (2, 2)


async def test_concurrent_relays_split_the_work(
    client: httpx.AsyncClient, runtime: Runtime, secantus: SecantusServer
) -> None:
    """Several relays at once: every conversation synced; on PostgreSQL each one exactly once
    (SKIP LOCKED), on SQLite the compare-and-set keeps a duplicate pass harmless."""
    headers = await register_and_login(client)
    agent = await create_agent(client, headers)
    async with mongo_failing(secantus.url):
        ids = [
            (await _turns(client, headers, agent["id"], 2))[0]["conversation_id"] for _ in "abcdef"
        ]
    relays = [
        Relay(runtime.engine, runtime.documents, claim_size=2, grace_seconds=0) for _ in range(3)
    ]
    passes = await asyncio.gather(*(r.run_once() for r in relays))
    for _ in range(5):
        passes += await asyncio.gather(*(r.run_once() for r in relays))
    for cid in ids:
        assert await mongo_messages(runtime, cid) == await sql_messages(runtime, cid)
        assert await sync_state(runtime, cid) == (4, 4)
    if runtime.engine.dialect.name == "postgresql":
        assert sum(p.advanced for p in passes) == len(ids)
        assert sum(p.messages for p in passes) == 4 * len(ids)


async def test_a_relay_pass_overtaken_by_an_erasure_leaves_nothing_of_the_person(
    runtime: Runtime, secantus: SecantusServer
) -> None:
    """The pass read the person's conversation; their erasure then removed it from both stores
    before the pass wrote it (SQLite: no row lock held across MongoDB calls). What the pass
    writes afterwards (messages, runs, the rebuilt document) is taken back. On PostgreSQL the
    pass holds the conversation's row: the erasure's delete waits for it, then removes all."""
    await factories.user(runtime, name="Admin")  # the heir: the person is not the only admin
    person = await factories.user(runtime, name="Pia")
    agent = await factories.agent(runtime, person)
    async with mongo_failing(secantus.url):
        outcome = await factories.turn(runtime, person, "Pia's secret", agent=agent)
    assert isinstance(outcome, TurnSucceeded), outcome
    cid = str(outcome.conversation.id)
    await runtime.acks.flush()
    assert await sync_state(runtime, cid) == (0, 2)
    documents = InsertLater(runtime.documents)
    relay = Relay(runtime.engine, documents, grace_seconds=0)
    erasures: list[asyncio.Task[None]] = []

    async def erasure() -> None:  # after the pass read the messages, before it writes them
        erasures.append(asyncio.create_task(erase(runtime, person)))
        if not relay.locks_rows:
            await erasures[0]

    documents.meanwhile = erasure
    result = await relay.run_once()
    await erasures[0]
    owner = str(person.id)
    assert await runtime.documents.conversations.count_documents({"user_id": owner}) == 0
    assert await runtime.documents.messages.count_documents({"user_id": owner}) == 0
    assert await mongo_messages(runtime, cid) == {}
    assert await runtime.documents.analytics.count_documents({"conversation_id": cid}) == 0
    assert await runtime.documents.analytics.count_documents({"user_id": owner}) == 0
    assert (result.conversations, result.advanced) == (1, 1 if relay.locks_rows else 0)


def test_claim_query_skips_locked_rows_on_postgresql_and_sql_server() -> None:
    from datetime import UTC, datetime

    from sqlalchemy import select

    from employeevirtual.stores.sql.tables import conversations

    captured: list[Any] = []

    class Capture:
        dialect = postgresql.dialect()

        async def execute(self, query: Any) -> list[Any]:
            captured.append(query)
            return []

    asyncio.run(
        SyncRepository(Capture()).claim_unsynced(  # type: ignore[arg-type]
            idle_before=datetime.now(UTC), limit=5
        )
    )
    query = captured[0]
    assert "FOR UPDATE SKIP LOCKED" in str(query.compile(dialect=postgresql.dialect()))
    rendered = str(query.compile(dialect=mssql.dialect()))
    assert "FROM empl.conversations WITH (UPDLOCK, READPAST, ROWLOCK)" in rendered
    assert "FOR UPDATE" not in str(select(conversations).compile(dialect=mssql.dialect()))


async def test_lag_alert_logs_an_error_writes_system_logs_and_degrades_readiness(
    client: httpx.AsyncClient,
    runtime: Runtime,
    secantus: SecantusServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    headers = await register_and_login(client)
    agent = await create_agent(client, headers)
    r = await client.get("/health/ready")
    assert r.json()["status"] == "ok"
    assert r.json()["checks"]["sync"]["status"] == "ok"
    async with mongo_failing(secantus.url):
        await _turns(client, headers, agent["id"], 1)
    relay = Relay(runtime.engine, runtime.documents, alert_seconds=0.2)
    runtime.settings.sync_alert_seconds = 0.2
    await asyncio.sleep(0.3)

    r = await client.get("/health/ready")
    body = r.json()
    assert r.status_code == 200
    assert body["status"] == "degraded", body
    assert body["checks"]["mongodb"]["status"] == "ok"
    sync = body["checks"]["sync"]
    assert sync["status"] == "lagging"
    assert sync["lag_seconds"] > 0.2
    assert sync["conversations_behind"] == 1

    with caplog.at_level(logging.ERROR, logger="employeevirtual.sync.relay"):
        await relay.check_alert()
        await relay.check_alert()  # once per alert period, not once per check
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert "sync lag alert" in errors[0].getMessage()
    logs = await runtime.documents.system_logs.find({"event": "sync_lag"}).to_list()
    assert len(logs) == 1
    assert logs[0]["level"] == "ERROR"
    assert logs[0]["details"]["conversations"] == 1

    await runtime.relay.drain()
    await relay.check_alert()
    assert await runtime.documents.system_logs.count_documents({"event": "sync_lag_recovered"})
    r = await client.get("/health/ready")
    assert r.json()["status"] == "ok"
    assert r.json()["checks"]["sync"]["lag_seconds"] == 0
