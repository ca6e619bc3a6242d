"""Ctrl-C / systemd stop with turns in flight (issue 9, item 5): a real SIGTERM to the server's
whole process group. The embedded SecantusDB, in a group of its own, keeps running while the
server drains; every in-flight turn is answered and reaches MongoDB, the sync acks are flushed,
and SecantusDB stops last."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pymongo import AsyncMongoClient
from sqlalchemy import select

from employeevirtual.stores.mongo.secantus import SecantusServer
from employeevirtual.stores.sql.engine import create_engine
from employeevirtual.stores.sql.tables import conversations, messages
from support.embedded import EmbeddedTemplate
from support.fake_openai import FakeOpenAIServer
from support.server_process import ServerProcess

IN_FLIGHT = 8
PASSWORD = "a-long-unusual-passphrase-42"


@pytest.fixture
def slow_model() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(reply=lambda body: "done") as server:
        server.delay(2.0, times=None)  # every model call takes 2 s: turns are in flight
        yield server


async def _user_and_agent(http: httpx.AsyncClient) -> tuple[dict[str, str], str]:
    email = "shutdown@example.com"
    r = await http.post(
        "/api/auth/register", json={"email": email, "password": PASSWORD, "name": "S"}
    )
    assert r.status_code == 201, r.text
    r = await http.post("/api/auth/login", data={"username": email, "password": PASSWORD})
    headers = {"Authorization": f"Bearer {r.json()['access_token']}"}
    r = await http.post(
        "/api/agents",
        json={"name": "Slow", "instructions": "x", "model": "openai-chat:gpt-4o-mini"},
        headers=headers,
    )
    assert r.status_code == 201, r.text
    return headers, r.json()["id"]


async def test_sigterm_to_the_group_drains_in_flight_turns_into_both_stores(
    tmp_path: Path, slow_model: FakeOpenAIServer, embedded_template: EmbeddedTemplate
) -> None:
    data = tmp_path / "data"
    embedded_template.copy_into(data)  # SecantusDB's user made by an earlier start
    server = ServerProcess(
        data,
        tmp_path / "server.log",
        EV_OPENAI_BASE_URL=slow_model.base_url,
        EV_OPENAI_API_KEY="sk-test-not-a-real-key",
        EV_MODEL_MAX_RETRIES=0,
        EV_AGENT_TIMEOUT_SECONDS=30,
        EV_SYNC_GRACE_SECONDS=30,  # the relay stays out of it: the turns' own writes count
    )
    await server.start()
    try:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as http:
            headers, agent = await _user_and_agent(http)
            turns = [
                asyncio.create_task(
                    http.post(
                        "/api/chat/agent",
                        json={"message": f"in flight {i}", "agent_id": agent},
                        headers=headers,
                    )
                )
                for i in range(IN_FLIGHT)
            ]
            async with asyncio.timeout(30):
                while len(slow_model.requests) < IN_FLIGHT:  # noqa: ASYNC110
                    await asyncio.sleep(0.05)
            server.signal_group(signal.SIGTERM)  # Ctrl-C in a terminal; systemd's stop
            answers = await asyncio.gather(*turns)
        assert [a.status_code for a in answers] == [200] * IN_FLIGHT, [a.text for a in answers]
        # a clean stop; uvicorn re-raises the signal it handled, so the status says SIGTERM
        assert await server.wait() in (0, -signal.SIGTERM)
    finally:
        await server.close()
    log = (tmp_path / "server.log").read_text()
    assert "MongoDB write failed" not in log, log[-3000:]

    # what the stopped server left on disk, read with the server gone
    engine = create_engine(f"sqlite+aiosqlite:///{data / 'employeevirtual.db'}")
    async with engine.connect() as conn:
        sql_ids = {str(r[0]) for r in await conn.execute(select(messages.c.id))}
        markers = (
            await conn.execute(select(conversations.c.synced_seq, conversations.c.message_count))
        ).all()
    await engine.dispose()
    mongo = SecantusServer(storage_path=str(data / "mongodb"), log_path=str(tmp_path / "m.log"))
    await mongo.start()
    try:
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo.url)
        db = client["employeevirtual"]
        mongo_ids = {d["_id"] async for d in db.chat_messages.find({}, {"_id": 1})}
        await client.close()
    finally:
        await mongo.kill()  # a reader of a copy nobody needs again: its clean stop takes ~2 s
    assert len(sql_ids) == 2 * IN_FLIGHT
    # before: the child got the SIGTERM too; the turns committed to SQL but missed MongoDB
    assert mongo_ids == sql_ids
    assert all(synced == count for synced, count in markers), markers  # acks flushed
