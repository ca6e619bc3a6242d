"""Limits shared through Redis by several server processes (here: two app instances on the
same stores). Skipped without EV_TEST_REDIS_URL; with it set, an unreachable Redis FAILS.
The last test needs no Redis: it shows what happens when the configured one is down."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

import pytest
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart
from pydantic_ai.models.function import AgentInfo, FunctionModel
from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection

from employeevirtual.security.ratelimit import Hit
from employeevirtual.settings import Settings
from support.access import account, app_client, counts
from support.api import PASSWORD, create_agent

REDIS_URL = os.environ.get("EV_TEST_REDIS_URL")
needs_redis = pytest.mark.skipif(not REDIS_URL, reason="EV_TEST_REDIS_URL is not set")


@pytest.fixture
async def shared(settings: Settings) -> AsyncIterator[Settings]:
    """Settings pointing at the test Redis under a prefix of this test's own."""
    assert REDIS_URL is not None
    client = Redis.from_url(REDIS_URL, socket_connect_timeout=3, socket_timeout=3)
    try:
        await client.ping()
    except Exception as exc:  # the URL may hold a password: report the error only
        await client.aclose()
        pytest.fail(f"EV_TEST_REDIS_URL is set but Redis is unreachable: {type(exc).__name__}")
    prefix = f"ev:test:{uuid.uuid4().hex}:"
    # the SQL database is pinned, so a second server (own data dir: one server per data dir)
    # shares it, as two processes behind one load balancer would
    yield settings.model_copy(
        update={
            "redis_url": REDIS_URL,
            "rate_limit_prefix": prefix,
            "database_url": settings.sql_url,
        }
    )
    keys = [k async for k in client.scan_iter(match=f"{prefix}*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


def _second_dir(settings: Settings) -> Path:
    return settings.data_dir.parent / "second-server"


@pytest.mark.redis
@needs_redis
async def test_global_limit_is_shared_by_processes(shared: Settings) -> None:
    async with (
        app_client(shared, rate_limit_global=4) as (one, runtime),
        app_client(shared, data_dir=_second_dir(shared), rate_limit_global=4) as (two, _),
    ):
        for c in (one, two, one, two):
            assert (await c.get("/api/agents")).status_code == 401
        before = await counts(runtime)
        r = await one.get("/api/agents")
        assert r.status_code == 429
        assert r.headers["RateLimit-Remaining"] == "0"
        assert int(r.headers["Retry-After"]) >= 1
        assert (await two.get("/api/agents")).status_code == 429
        assert await counts(runtime) == before


@pytest.mark.redis
@needs_redis
async def test_chat_limit_and_login_throttle_are_shared(shared: Settings) -> None:
    async with (
        app_client(shared, rate_limit_chat=2, login_max_failures=2) as (one, runtime),
        app_client(
            shared, data_dir=_second_dir(shared), rate_limit_chat=2, login_max_failures=2
        ) as (two, _),
    ):
        user = await account(one)
        agent = await create_agent(one, user.headers)
        body = {"message": "hi", "agent_id": agent["id"]}
        assert (
            await one.post("/api/chat/agent", json=body, headers=user.headers)
        ).status_code == 200
        assert (
            await two.post("/api/chat/agent", json=body, headers=user.headers)
        ).status_code == 200
        r = await one.post("/api/chat/agent", json=body, headers=user.headers)
        assert r.status_code == 429

        for c in (one, two):
            r = await c.post(
                "/api/auth/login", data={"username": user.email, "password": "bad-bad-bad"}
            )
            assert r.status_code == 401
        r = await one.post("/api/auth/login", data={"username": user.email, "password": PASSWORD})
        assert r.status_code == 429
        assert "Retry-After" in r.headers
        _ = runtime


@pytest.mark.redis
@needs_redis
async def test_concurrent_turns_are_counted_across_processes(shared: Settings) -> None:
    async with (
        app_client(shared, max_concurrent_turns=1) as (one, runtime_one),
        app_client(shared, data_dir=_second_dir(shared), max_concurrent_turns=1) as (
            two,
            runtime_two,
        ),
    ):
        entered, release = asyncio.Event(), asyncio.Event()

        async def blocking(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
            entered.set()
            await release.wait()
            return ModelResponse(parts=[TextPart("done")])

        runtime_one.models.override("test", FunctionModel(blocking))
        user = await account(one)
        agent = await create_agent(one, user.headers, model="test")
        body = {"message": "one", "agent_id": agent["id"]}
        first = asyncio.create_task(one.post("/api/chat/agent", json=body, headers=user.headers))
        await asyncio.wait_for(entered.wait(), 10)
        before = await counts(runtime_two)
        r = await two.post("/api/chat/agent", json=body, headers=user.headers)
        assert r.status_code == 429, r.text
        assert await counts(runtime_two) == before
        release.set()
        assert (await first).status_code == 200
        runtime_two.models.override("test", FunctionModel(blocking))
        r = await two.post("/api/chat/agent", json=body, headers=user.headers)
        assert r.status_code == 200  # the slot was given back in Redis


def _command(packed: bytes | str | Iterable[bytes]) -> tuple[str, list[str]]:
    """A packed command's name and its keys (an EVALSHA's), from its RESP array."""
    raw = packed.encode() if isinstance(packed, str) else packed
    parts = (raw if isinstance(raw, bytes) else b"".join(raw)).split(b"\r\n")[2::2]
    name = parts[0].decode().upper()
    keys = [k.decode() for k in parts[3 : 3 + int(parts[2])]] if name == "EVALSHA" else []
    return name, keys


@pytest.mark.redis
@needs_redis
async def test_a_chat_turn_costs_three_redis_round_trips(
    shared: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 17: each round trip costs the server ~0.2 ms of CPU. A plain turn makes three:
    the global and the chat rate limits in one script, the turn slot taken, and given back
    (the global limit used to be a round trip of its own, in the middleware)."""
    async with app_client(shared) as (client, _runtime):
        user = await account(client)
        agent = await create_agent(client, user.headers)
        r = await client.post(
            "/api/chat/agent", json={"message": "hi", "agent_id": agent["id"]}, headers=user.headers
        )
        assert r.status_code == 200  # every Redis client has its connection from here on
        body = {"message": "again", "conversation_id": r.json()["conversation_id"]}
        sent: list[tuple[str, list[str]]] = []
        send = AbstractConnection.send_packed_command

        async def recorded(
            self: AbstractConnection, command: Any, check_health: bool = True
        ) -> None:
            sent.append(_command(command))
            await send(self, command, check_health)

        monkeypatch.setattr(AbstractConnection, "send_packed_command", recorded)
        r = await client.post("/api/chat/agent", json=body, headers=user.headers)
        assert r.status_code == 200
        await asyncio.sleep(0.2)  # what the turn left running in the background
        monkeypatch.undo()
    prefix = shared.rate_limit_prefix
    slot = f"{prefix}turns:{user.id}"
    assert sent == [
        ("EVALSHA", [f"{prefix}global:ip:203.0.113.7", f"{prefix}chat:user:{user.id}"]),
        ("EVALSHA", [slot]),
        ("EVALSHA", [slot]),
    ]


async def test_redis_down_limits_fail_open_and_login_fails_closed(settings: Settings) -> None:
    """A dead cache must not become a 500: the flood guards let traffic through (logged), the
    login throttle refuses logins (503) rather than allow unlimited guessing."""
    down = "redis://127.0.0.1:1/0"
    async with app_client(settings, redis_url=down) as (client, _runtime):
        r = await client.post(
            "/api/auth/register", json={"email": "r@example.com", "password": PASSWORD, "name": "R"}
        )
        assert r.status_code == 201
        r = await client.post(
            "/api/auth/login", data={"username": "r@example.com", "password": PASSWORD}
        )
        assert r.status_code == 503
        assert "throttle store down" in r.json()["detail"]
        assert (await client.get("/api/agents")).status_code == 401


@pytest.mark.redis
@needs_redis
async def test_the_counters_share_one_bounded_redis_pool(shared: Settings) -> None:
    """Issue 17: a burst of turns opened one Redis connection per concurrent command, in two
    pools (the rate limits', the turn slots'), and past redis-py's default of 100 a command
    failed at once ("Too many connections"): the limits were skipped, logged, for the burst
    they exist for. Now the counters share one client whose pool keeps at most
    ``EV_REDIS_MAX_CONNECTIONS`` and makes the rest wait: 200 rate-limit hits and turn slots
    at once all answer, on no more than that many connections (Redis's own CLIENT LIST)."""
    assert shared.redis_url is not None
    name = f"ev-test-{uuid.uuid4().hex}"
    url = shared.redis_url + ("&" if "?" in shared.redis_url else "?") + f"client_name={name}"
    async with app_client(shared, redis_url=url, redis_max_connections=4) as (_client, runtime):
        limiter, slots = runtime.limiter, runtime.concurrency

        async def one(i: int) -> bool:
            (decision,) = await limiter.hit_in_order([Hit(f"burst:{i}", 10, 60)])
            async with slots.hold(f"slot:{i}", limit=1):
                await asyncio.sleep(0)
            return decision.allowed

        assert all(await asyncio.gather(*(one(i) for i in range(200))))
        admin = Redis.from_url(shared.redis_url, socket_connect_timeout=3, socket_timeout=3)
        try:
            clients = await admin.client_list()
        finally:
            await admin.aclose()
    # the turn log's own client (its cancel channel) carries the URL's name too
    counters = [c for c in clients if c["name"] == name and c["cmd"] == "evalsha"]
    assert 1 <= len(counters) <= 4, counters
