"""A turn followed, resumed and cancelled from a second server process, through Redis.

Server A runs in the test (so its model can be a paced FunctionModel); server B is a separate
``uvicorn`` process on the same stores (PostgreSQL when EV_TEST_POSTGRES_URL is set, else the
SQLite file) and the same Redis. Skipped without EV_TEST_REDIS_URL; with it set, an unreachable
Redis fails. Both servers and their stores are started once per backend and shared by the
module's tests, each with users, agents, conversations and a model name of its own."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from employeevirtual.main import create_app
from employeevirtual.settings import Settings
from support.api import create_agent, register_and_login
from support.live import WORDS, paced, stored_messages
from support.sse import Event, events, read_all, serve
from support.stores import sql_messages

REDIS_URL = os.environ.get("EV_TEST_REDIS_URL")
pytestmark = [
    pytest.mark.redis,
    pytest.mark.skipif(not REDIS_URL, reason="EV_TEST_REDIS_URL is not set"),
    pytest.mark.xdist_group("redis_resume"),  # one worker starts the shared servers
]
SSE = {"Accept": "text/event-stream"}


@pytest.fixture(scope="module")
async def shared(module_settings: Settings) -> AsyncIterator[Settings]:
    assert REDIS_URL is not None
    client = Redis.from_url(REDIS_URL, socket_connect_timeout=3)
    try:
        await client.ping()
    except Exception as exc:
        await client.aclose()
        pytest.fail(f"EV_TEST_REDIS_URL is set but Redis is unreachable: {type(exc).__name__}")
    prefix = f"ev:test:{uuid.uuid4().hex}:"
    yield module_settings.model_copy(
        update={
            "redis_url": REDIS_URL,
            "rate_limit_prefix": prefix + "rl:",
            "stream_key_prefix": prefix + "turn:",
            "stream_retention_seconds": 120.0,
        }
    )
    keys = [k async for k in client.scan_iter(match=f"{prefix}*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


def _env(settings: Settings) -> dict[str, str]:
    assert settings.mongodb_url is not None and settings.secret_key is not None
    env = {
        **os.environ,
        # its own data dir (one server per data dir), the same SQL database pinned below
        "EV_DATA_DIR": str(settings.data_dir.parent / "second-server"),
        "EV_DATABASE_URL": settings.sql_url,
        "EV_DATABASE_SCHEMA": settings.database_schema,
        "EV_MONGODB_URL": settings.mongodb_url.get_secret_value(),
        "EV_MONGODB_DATABASE": settings.mongodb_database,
        "EV_SECRET_KEY": settings.secret_key.get_secret_value(),
        "EV_REDIS_URL": str(settings.redis_url),
        "EV_RATE_LIMIT_PREFIX": settings.rate_limit_prefix,
        "EV_STREAM_KEY_PREFIX": settings.stream_key_prefix,
        "EV_SYNC_RELAY_ENABLED": "false",
        "EV_LOG_LEVEL": "WARNING",
    }
    return env


@pytest.fixture(scope="module")
async def second_server(shared: Settings) -> AsyncIterator[str]:
    """Server B: its own process, same stores, same Redis."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    process = subprocess.Popen(  # noqa: ASYNC220 - started once, waited on below
        [
            sys.executable,
            "-m",
            "uvicorn",
            "employeevirtual.main:create_app",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        env=_env(shared),
    )
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=url) as probe:
            for _ in range(1200):  # a loaded shared machine: imports alone can take 30 s
                if process.poll() is not None:
                    pytest.fail(f"server B exited with {process.returncode}")
                try:
                    if (await probe.get("/health/live")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
            else:
                pytest.fail("server B did not start within 120 s")
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
async def first_server(shared: Settings) -> AsyncIterator[tuple[str, Any]]:
    app = create_app(shared)
    async with app.router.lifespan_context(app), serve(app) as url:
        yield url, app.state.runtime


async def test_resume_and_cancel_from_another_process(
    shared: Settings, first_server: tuple[str, Any], second_server: str
) -> None:
    url_a, runtime = first_server
    model = paced("openai-chat:paced-redis", delay=0.03)
    runtime.models.override(model.model_name, model)
    async with (
        httpx.AsyncClient(base_url=url_a, timeout=30) as a,
        httpx.AsyncClient(base_url=second_server, timeout=30) as b,
    ):
        headers = await register_and_login(a)
        agent = await create_agent(a, headers, model=model.model_name)
        seen: list[Event] = []
        async with a.stream(
            "POST",
            "/api/chat/agent",
            json={"message": "hi", "agent_id": agent["id"]},
            headers={**headers, **SSE},
        ) as r:
            turn_id = r.headers["X-Turn-Id"]
            async for e in events(r):
                if e is not None:
                    seen.append(e)
                if len(seen) == 3:
                    break  # turn + two deltas, then the client goes away
        # resume on server B, from the last id it saw
        async with b.stream(
            "GET",
            f"/api/chat/turns/{turn_id}/events",
            headers={**headers, "Last-Event-ID": seen[-1].id or ""},
        ) as r:
            assert r.status_code == 200
            rest = await read_all(r)
        assert rest[-1].event == "done"
        ids = [e.id for e in seen + rest]
        assert len(ids) == len(set(ids)) and ids == [str(i) for i in range(1, len(ids) + 1)]
        text = "".join(e.data["delta"] for e in seen + rest if e.event == "delta")
        cid = seen[0].data["conversation_id"]
        stored = await stored_messages(runtime, cid)
        assert [m["message_type"] for m in stored] == ["user", "agent"]
        assert text == stored[1]["content"] == "".join(WORDS)
        # the events have a TTL in Redis now that the turn has ended
        redis = Redis.from_url(str(shared.redis_url))
        ttl = await redis.pttl(f"{shared.stream_key_prefix}{turn_id}:events")
        await redis.aclose()
        assert 0 < ttl <= shared.stream_retention_seconds * 1000
        # another user cannot see it from B either
        stranger = await register_and_login(b)
        r2 = await b.get(f"/api/chat/turns/{turn_id}/events", headers=stranger)
        assert r2.status_code == 404

        # cancel through B while A runs the turn
        got: list[Event] = []
        async with a.stream(
            "POST",
            "/api/chat/agent",
            json={"message": "stop me", "conversation_id": cid},
            headers={**headers, **SSE},
        ) as r:
            second = r.headers["X-Turn-Id"]
            async for e in events(r):
                if e is None:
                    continue
                got.append(e)
                if len(got) == 3:
                    c = await b.post(f"/api/chat/turns/{second}/cancel", headers=headers)
                    assert c.status_code == 202, c.text
        assert got[-1].event == "done"
        done = got[-1].data
        assert done["agent_message"]["metadata"]["cancelled"] is True
        streamed = "".join(e.data["delta"] for e in got if e.event == "delta")
        assert done["agent_message"]["content"] == streamed
        assert len(streamed.split()) < len(WORDS)
        assert len(await sql_messages(runtime, cid)) == 4
        again = await b.post(f"/api/chat/turns/{second}/cancel", headers=headers)
        assert again.status_code == 409


async def test_an_idempotent_retry_on_another_process_attaches_to_the_running_turn(
    shared: Settings, first_server: tuple[str, Any], second_server: str
) -> None:
    url_a, runtime = first_server
    model = paced("openai-chat:paced-redis-key", delay=0.03)
    runtime.models.override(model.model_name, model)
    async with (
        httpx.AsyncClient(base_url=url_a, timeout=30) as a,
        httpx.AsyncClient(base_url=second_server, timeout=30) as b,
    ):
        headers = await register_and_login(a)
        agent = await create_agent(a, headers, model=model.model_name)
        key = {"Idempotency-Key": f"k-{uuid.uuid4()}"}
        body = {"message": "once", "agent_id": agent["id"]}
        first: list[Event] = []
        async with a.stream(
            "POST", "/api/chat/agent", json=body, headers={**headers, **SSE, **key}
        ) as r:
            async for e in events(r):
                if e is not None:
                    first.append(e)
                if len(first) == 2:
                    break
        async with b.stream(
            "POST", "/api/chat/agent", json=body, headers={**headers, **SSE, **key}
        ) as r:
            assert r.status_code == 200, await r.aread()
            assert r.headers.get("Idempotent-Replayed") == "true"
            retry = await read_all(r)
        assert retry[0].data == first[0].data and retry[-1].event == "done"
        cid = first[0].data["conversation_id"]
        assert len(await sql_messages(runtime, cid)) == 2  # it ran once
        text = "".join(e.data["delta"] for e in retry if e.event == "delta")
        assert text == retry[-1].data["agent_message"]["content"] == "".join(WORDS)
