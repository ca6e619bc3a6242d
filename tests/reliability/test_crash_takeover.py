"""A server killed with a keyed turn in flight, and restarted (issue 9, item 2): the retry takes
the key over at once because its owner (the dead process, recorded in ``server_instances``) is
known gone, instead of answering 409 until the lease (agent timeout + 30 s = 90 s) runs out.

MongoDB is the session's SecantusDB (a database of this test's own), not the embedded child: the
key, its owner and the dead instance are all in SQL (the SQLite file in the data dir), and the
embedded child's own kill and restart are tested in ``tests/streaming/test_server_process``;
each embedded start and stop here cost ~4 s and ~2 s of the run."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pymongo import AsyncMongoClient

from employeevirtual.stores.mongo.secantus import SecantusServer
from support.fake_openai import FakeOpenAIServer
from support.server_process import ServerProcess

PASSWORD = "a-long-unusual-passphrase-42"


@pytest.fixture
def model() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(reply=lambda body: "done") as server:
        server.delay(60.0, times=1)  # the first call hangs: its turn is in flight when killed
        yield server


async def test_a_retry_after_the_owner_crashed_takes_the_key_over_at_once(
    tmp_path: Path, model: FakeOpenAIServer, secantus: SecantusServer
) -> None:
    database = f"ev_{uuid.uuid4().hex[:12]}"
    server = ServerProcess(
        tmp_path / "data",
        tmp_path / "server.log",
        EV_OPENAI_BASE_URL=model.base_url,
        EV_OPENAI_API_KEY="sk-test-not-a-real-key",
        EV_MODEL_MAX_RETRIES=0,
        EV_AGENT_TIMEOUT_SECONDS=60,  # the key's lease: 90 s
        EV_MONGODB_URL=secantus.url,
        EV_MONGODB_DATABASE=database,
    )
    await server.start()
    try:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=120) as http:
            email = "crash@example.com"
            r = await http.post(
                "/api/auth/register", json={"email": email, "password": PASSWORD, "name": "C"}
            )
            assert r.status_code == 201, r.text
            r = await http.post("/api/auth/login", data={"username": email, "password": PASSWORD})
            headers = {"Authorization": f"Bearer {r.json()['access_token']}"}
            r = await http.post(
                "/api/agents",
                json={"name": "A", "instructions": "x", "model": "openai-chat:gpt-4o-mini"},
                headers=headers,
            )
            keyed = {**headers, "Idempotency-Key": "in-flight-at-the-crash"}
            body = {"message": "hello", "agent_id": r.json()["id"]}
            in_flight = asyncio.create_task(http.post("/api/chat/agent", json=body, headers=keyed))
            async with asyncio.timeout(30):
                while not model.requests:  # noqa: ASYNC110 - the turn reached the model
                    await asyncio.sleep(0.05)
            await server.kill()  # SIGKILL: the pending key stays behind
            with contextlib.suppress(httpx.HTTPError):
                await in_flight
            await server.start()  # the same data dir and port
            retry = await http.post("/api/chat/agent", json=body, headers=keyed)
        # before: 409 "still being processed" for 90 s
        assert retry.status_code == 200, retry.text
        assert retry.json()["agent_message"]["content"] == "done"
        assert len(model.requests) == 2  # the model ran again, once
    finally:
        await server.close()
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(secantus.url)
        await client.drop_database(database)
        await client.close()
