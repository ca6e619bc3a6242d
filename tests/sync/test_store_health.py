"""Issue 9, items 3 and 4: lost MongoDB data is found and repaired, readiness probes each store
with a write, the embedded SecantusDB is supervised, and turns fail fast while MongoDB is down.

Real stores throughout: SecantusDB processes (killed with SIGKILL, or failing writes through its
``failCommand`` fail point), SQLite/PostgreSQL with a trigger that refuses writes.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from employeevirtual.main import create_app
from employeevirtual.runtime import Runtime
from employeevirtual.settings import Settings
from employeevirtual.stores.mongo.secantus import SecantusServer
from support import factories
from support.embedded import EmbeddedTemplate
from support.stores import mongo_failing, mongo_messages, sql_messages, sync_state

CHAT = "/api/chat/agent"


@asynccontextmanager
async def serve(settings: Settings) -> AsyncIterator[tuple[httpx.AsyncClient, Runtime]]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield c, app.state.runtime


async def eventually(check: Callable[[], Any], timeout: float = 30.0) -> None:  # noqa: ASYNC109
    async with asyncio.timeout(timeout):
        while not await check():  # noqa: ASYNC110 - polling another store
            await asyncio.sleep(0.1)


async def _turns(runtime: Runtime, n: int) -> tuple[dict[str, str], list[str]]:
    """``n`` one-turn conversations of a new user, made through the services; the user's
    headers for the HTTP calls the test is about."""
    owner = await factories.user(runtime)
    agent = await factories.agent(runtime, owner)
    cids = [
        str((await factories.conversation(runtime, owner, agent, [f"m{i}"])).id) for i in range(n)
    ]
    return factories.headers(runtime, owner), cids


async def _stores_equal(runtime: Runtime, cids: list[str]) -> bool:
    for cid in cids:
        if await mongo_messages(runtime, cid) != await sql_messages(runtime, cid):
            return False
        if await runtime.documents.get_conversation(uuid.UUID(cid)) is None:
            return False
    return True


# -- item 3: lost MongoDB data ---------------------------------------------------------------


async def test_mongodb_data_lost_while_running_is_reported_and_repaired(
    settings: Settings,
) -> None:
    own = settings.model_copy(
        update={"sync_relay_enabled": True, "sync_check_seconds": 0.3, "sync_grace_seconds": 0}
    )
    async with serve(own) as (client, runtime):
        await runtime.reconciler.stop()  # first, detection alone
        _, cids = await _turns(runtime, 3)
        await runtime.acks.flush()
        assert [await sync_state(runtime, c) for c in cids] == [(2, 2)] * 3
        # the storage lost everything (a deleted data dir, a restore from an old backup)
        await runtime.documents.messages.delete_many({})
        await runtime.documents.conversations.delete_many({})
        assert await runtime.reconciler.check_totals()
        ready = (await client.get("/health/ready")).json()
        # before: "ok", lag 0 (the relay works above synced_seq and sees nothing owed)
        assert ready["status"] == "degraded", ready
        sync = ready["checks"]["sync"]
        assert sync["status"] == "drift"
        assert sync["lag_seconds"] == 0
        assert sync["drift"]["missing_messages"] == 6
        assert sync["drift"]["missing_conversations"] == 3
        runtime.reconciler.start()  # the periodic check repairs it

        async def repaired() -> bool:
            return await _stores_equal(runtime, cids)

        await eventually(repaired)
        await eventually(
            lambda: _ready_status(client, "ok"),
        )


async def _ready_status(client: httpx.AsyncClient, status: str) -> bool:
    return bool((await client.get("/health/ready")).json()["status"] == status)


async def test_mongodb_data_lost_while_the_server_was_down_is_repaired_at_start(
    settings: Settings,
) -> None:
    own = settings.model_copy(update={"sync_reconcile_seconds": 600, "sync_grace_seconds": 0})
    async with serve(own) as (_, runtime):
        _, cids = await _turns(runtime, 2)
        await runtime.acks.flush()
        db = runtime.documents.db
        await db.chat_messages.delete_many({})
        await db.chat_conversations.delete_many({})
    # restarted: its first quick round runs at start, not EV_SYNC_RECONCILE_SECONDS later
    async with serve(own) as (_, runtime):
        await eventually(lambda: _stores_equal(runtime, cids), timeout=15)

        async def round_done() -> bool:  # its counters move once the round has ended
            return runtime.reconciler.state.rounds >= 1

        await eventually(round_done, timeout=15)
        assert runtime.reconciler.state.repaired_total >= 2


# -- item 4: readiness probes with a write ----------------------------------------------------


async def test_readiness_reports_a_mongodb_that_answers_ping_but_fails_writes(
    client: httpx.AsyncClient, runtime: Runtime, secantus: SecantusServer
) -> None:
    assert (await client.get("/health/ready")).json()["checks"]["mongodb"]["status"] == "ok"
    async with mongo_failing(secantus.url, ("update", "insert"), code=8):
        await runtime.documents.ping()  # still answers
        ready = (await client.get("/health/ready")).json()
    assert ready["status"] == "degraded"
    assert ready["checks"]["mongodb"]["status"] == "down"
    assert ready["checks"]["mongodb"]["error"].startswith("WriteError") or "8" in str(
        ready["checks"]["mongodb"]["error"]
    )


async def test_readiness_reports_sql_that_reads_but_refuses_writes(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    engine = runtime.engine
    async with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            schema = f'"{runtime.settings.database_schema}"'
            await conn.execute(
                text(
                    f"CREATE FUNCTION {schema}.ev_refuse() RETURNS trigger LANGUAGE plpgsql AS "
                    "$$ BEGIN RAISE EXCEPTION 'could not extend file: No space left on device'; "
                    "END $$"
                )
            )
            await conn.execute(
                text(
                    f"CREATE TRIGGER ev_refuse BEFORE UPDATE OR INSERT ON {schema}.server_instances"
                    f" FOR EACH ROW EXECUTE FUNCTION {schema}.ev_refuse()"
                )
            )
        else:
            await conn.execute(
                text(
                    "CREATE TRIGGER ev_refuse BEFORE UPDATE ON server_instances BEGIN "
                    "SELECT RAISE(ABORT, 'database or disk is full'); END"
                )
            )
    r = await client.get("/health/ready")
    # before: 200 "ok" (a SELECT 1 succeeds on a database that cannot write)
    assert r.status_code == 503, r.text
    sql = r.json()["checks"]["sql"]
    assert sql["status"] == "down"
    assert "full" in sql["error"] or "No space" in sql["error"]


# -- item 4: the supervised embedded SecantusDB and the circuit breaker -------------------------


async def test_a_killed_embedded_secantusdb_is_logged_restarted_and_turns_fail_fast_meanwhile(
    settings: Settings,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    embedded_template: EmbeddedTemplate,
) -> None:
    embedded_template.copy_into(settings.data_dir)  # SecantusDB's user made by an earlier start
    embedded = settings.model_copy(
        update={
            "mongodb_url": None,  # the embedded default: a SecantusDB child in the data dir
            "sync_relay_enabled": True,
            "sync_interval_seconds": 0.2,
            "sync_max_backoff_seconds": 0.5,
            "secantus_probe_seconds": 0.2,
            "mongodb_breaker_seconds": 30,  # only a heartbeat closes it in this test
        }
    )
    caplog.set_level(logging.WARNING)
    async with serve(embedded) as (client, runtime):
        assert runtime.secantus is not None and runtime.supervisor is not None
        headers, cids = await _turns(runtime, 1)
        pid = runtime.secantus.pid
        assert pid is not None
        # hold the restart back until the turns below have run against a dead MongoDB
        turns_done = asyncio.Event()
        start = runtime.secantus.start

        async def start_after_the_turns(timeout: float = 30.0) -> None:  # noqa: ASYNC109
            await turns_done.wait()
            await start(timeout)

        monkeypatch.setattr(runtime.secantus, "start", start_after_the_turns)
        os.kill(pid, signal.SIGKILL)
        for i in range(3):
            r = await client.post(
                CHAT, json={"message": f"down {i}", "conversation_id": cids[0]}, headers=headers
            )
            assert r.status_code == 200, r.text  # committed in SQL
        turns_done.set()
        # the first call that could not reach MongoDB opened the breaker; the rest failed fast
        assert runtime.breaker.opened >= 1
        failed_fast = [m for m in caplog.messages if "MongoUnavailable" in m]
        assert failed_fast, caplog.messages

        async def exit_logged() -> bool:  # the supervisor may see the exit after the turns ran
            return any("SecantusDB exited with code -9" in m for m in caplog.messages)

        await eventually(exit_logged)  # before: nothing logged, and it stayed down

        async def restarted() -> bool:
            return runtime.supervisor is not None and runtime.supervisor.restarts == 1

        await eventually(restarted)
        assert runtime.secantus.pid != pid
        await eventually(lambda: _stores_equal(runtime, cids))
        await eventually(lambda: _ready_status(client, "ok"))
        ready = (await client.get("/health/ready")).json()["checks"]["mongodb"]
        assert ready["embedded"]["restarts"] == 1
        assert "exited with code -9" in ready["embedded"]["last_exit"]
