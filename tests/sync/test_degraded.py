"""Degraded modes with real faults: MongoDB killed, SQL unreachable, concurrent turns."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart
from pydantic_ai.models.function import AgentInfo, FunctionModel
from sqlalchemy.engine import make_url

from employeevirtual.main import create_app
from employeevirtual.runtime import Runtime
from employeevirtual.settings import Settings
from employeevirtual.stores.mongo.secantus import SecantusServer
from support.api import create_agent, register_and_login
from support.proxy import TcpProxy
from support.stores import mongo_messages, sql_messages, sync_state

CHAT = "/api/chat/agent"


@asynccontextmanager
async def serve(settings: Settings) -> AsyncIterator[tuple[httpx.AsyncClient, Runtime]]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield c, app.state.runtime


async def eventually(check: Callable[[], Any], timeout: float = 20.0) -> None:  # noqa: ASYNC109
    async with asyncio.timeout(timeout):
        while not await check():  # noqa: ASYNC110 - polling another store
            await asyncio.sleep(0.1)


async def test_mongodb_killed_turns_succeed_from_sql_and_the_relay_catches_up_on_return(
    settings: Settings, tmp_path: Path
) -> None:
    mongo = SecantusServer(
        storage_path=str(tmp_path / "mongo"), log_path=str(tmp_path / "mongo.log")
    )
    await mongo.start()
    own = settings.model_copy(
        update={
            "mongodb_url": SecretStr(mongo.url),
            "mongodb_timeout_ms": 300,
            "sync_relay_enabled": True,
            "sync_interval_seconds": 0.2,
            "sync_max_backoff_seconds": 0.5,
        }
    )
    try:
        async with serve(own) as (client, runtime):
            headers = await register_and_login(client)
            agent = await create_agent(client, headers)
            r = await client.post(
                CHAT, json={"message": "up", "agent_id": agent["id"]}, headers=headers
            )
            assert r.status_code == 200
            cid = r.json()["conversation_id"]
            await runtime.acks.flush()  # the turns below now fail fast: no time for the timer

            await mongo.kill()
            for i in range(3):
                r = await client.post(
                    CHAT, json={"message": f"down {i}", "conversation_id": cid}, headers=headers
                )
                assert r.status_code == 200, r.text
            r = await client.get(f"/api/conversations/{cid}/messages", headers=headers)
            assert r.status_code == 200
            assert r.json()["source"] == "sql"
            assert [m["seq"] for m in r.json()["messages"]] == list(range(1, 9))
            r = await client.get("/health/ready")
            assert r.status_code == 200
            assert r.json()["status"] == "degraded"
            assert r.json()["checks"]["mongodb"]["status"] == "down"
            assert await sync_state(runtime, cid) == (2, 8)

            await mongo.start()

            async def caught_up() -> bool:
                return await sync_state(runtime, cid) == (8, 8)

            await eventually(caught_up)
            assert await mongo_messages(runtime, cid) == await sql_messages(runtime, cid)
            r = await client.get(f"/api/conversations/{cid}/messages", headers=headers)
            assert r.json()["source"] == "mongodb"
            assert (await client.get("/health/ready")).json()["status"] == "ok"
    finally:
        await mongo.stop()


class Breaker:
    """A model that answers, or, once armed, makes SQL unreachable while the agent runs."""

    def __init__(self) -> None:
        self.armed = False
        self.cut: Callable[[], Any] | None = None

    async def __call__(self, messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        if self.armed and self.cut is not None:
            await self.cut()
        return ModelResponse(parts=[TextPart("an answer")], model_name="breaker")


async def test_sql_unreachable_answers_503_and_writes_nothing_to_mongodb(
    settings: Settings, backend: str, tmp_path: Path
) -> None:
    proxy: TcpProxy | None = None
    if backend == "postgres":
        url = make_url(str(settings.database_url))
        proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
        await proxy.start()
        settings = settings.model_copy(
            update={
                "database_url": url.set(host="127.0.0.1", port=proxy.port).render_as_string(
                    hide_password=False
                )
            }
        )
    breaker = Breaker()
    async with serve(settings) as (client, runtime):
        runtime.models.override("openai-chat:breaker", FunctionModel(breaker))
        headers = await register_and_login(client)
        agent = await create_agent(client, headers, model="openai-chat:breaker")
        r = await client.post(CHAT, json={"message": "a", "agent_id": agent["id"]}, headers=headers)
        assert r.status_code == 200
        cid = r.json()["conversation_id"]
        await runtime.acks.flush()

        async def cut() -> None:
            await runtime.engine.dispose()
            if proxy is not None:
                await proxy.cut()
            else:  # the SQLite file's directory vanishes (root ignores permissions)
                os.rename(settings.data_dir, tmp_path / "gone")
                settings.data_dir.write_text("not a directory any more")

        breaker.cut, breaker.armed = cut, True
        for body in (
            {"message": "b", "conversation_id": cid},
            {"message": "c", "agent_id": agent["id"]},
        ):
            r = await client.post(CHAT, json=body, headers={**headers, "Idempotency-Key": "k"})
            assert r.status_code == 503, r.text
            assert r.headers["Retry-After"] == "5"
            assert "nothing was written" in r.json()["detail"]
        assert (await client.get("/health/ready")).status_code == 503

        docs = runtime.documents
        assert await docs.messages.count_documents({}) == 2
        assert await docs.conversations.count_documents({}) == 1
        doc = await docs.conversations.find_one({"_id": cid})
        assert doc is not None
        assert doc["metadata"]["message_count"] == 2
        if proxy is None:
            settings.data_dir.unlink()
            os.rename(tmp_path / "gone", settings.data_dir)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Room for many turns of one user at once (where a per-user limit exists)."""
    if "max_concurrent_turns" in Settings.model_fields:
        return settings.model_copy(update={"max_concurrent_turns": 64})
    return settings


@pytest.mark.parametrize("turns", [16])
async def test_concurrent_turns_in_one_conversation_share_no_seq_and_keep_exact_counters(
    client: httpx.AsyncClient, runtime: Runtime, turns: int
) -> None:
    headers = await register_and_login(client)
    agent = await create_agent(client, headers)
    r = await client.post(CHAT, json={"message": "start", "agent_id": agent["id"]}, headers=headers)
    cid = r.json()["conversation_id"]
    replies = await asyncio.gather(
        *(
            client.post(CHAT, json={"message": f"c{i}", "conversation_id": cid}, headers=headers)
            for i in range(turns)
        )
    )
    assert [x.status_code for x in replies] == [200] * turns
    bodies = [r.json(), *(x.json() for x in replies)]
    seqs = sorted(s for b in bodies for s in (b["user_message"]["seq"], b["agent_message"]["seq"]))
    assert seqs == list(range(1, 2 * (turns + 1) + 1))
    total = 2 * (turns + 1)
    in_sql = await sql_messages(runtime, cid)
    assert sorted(in_sql.values()) == seqs
    conv = (await client.get(f"/api/conversations/{cid}", headers=headers)).json()
    assert conv["message_count"] == total
    assert conv["total_tokens"] == sum(b["usage"]["total_tokens"] for b in bodies)

    await runtime.acks.flush()
    await runtime.relay.drain()  # turns whose document update lost the race
    assert await mongo_messages(runtime, cid) == in_sql
    assert await sync_state(runtime, cid) == (total, total)
    doc = await runtime.documents.conversations.find_one({"_id": cid})
    assert doc is not None
    meta = doc["metadata"]
    assert (meta["message_count"], meta["last_seq"], meta["agent_runs"]) == (
        total,
        total,
        turns + 1,
    )
    assert meta["total_tokens"] == conv["total_tokens"]
    assert (await runtime.reconciler.run(repair=False)).clean
