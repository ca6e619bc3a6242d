"""Without ``pool_pre_ping``, a PostgreSQL connection killed under the pool costs no turn.

The engine drops a connection the driver saw close at checkout and retries a connection's first
statement once after a disconnect-class error (stores/sql/engine.py). These tests kill this test's
own backends with ``pg_terminate_backend`` (found by the unique schema name in their last query;
never anyone else's) while turns run, and check that every 2xx turn is committed, that nothing
answers a 500, and that a turn cut mid-transaction answers 503 and succeeds when retried.
"""

from __future__ import annotations

import asyncio
import os
from collections import Counter
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from employeevirtual.runtime import Runtime
from employeevirtual.settings import Settings
from employeevirtual.stores.sql.engine import create_engine, read_connection
from support.api import create_agent, register_and_login

POSTGRES = pytest.mark.parametrize("backend", ["postgres"])
pytestmark = pytest.mark.skipif(
    not os.environ.get("EV_TEST_POSTGRES_URL"), reason="PostgreSQL only (EV_TEST_POSTGRES_URL)"
)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Four clients of one user turn as fast as they can: the abuse limits stay out of it."""
    return settings.model_copy(update={"rate_limit_chat": 1_000_000, "max_concurrent_turns": 100})


RETRY_WINDOW_SECONDS = 5.0  # the 503's Retry-After (api/errors.py)


async def _kill_own_backends(settings: Settings) -> int:
    """Terminate every backend whose last statement named this test's schema."""
    assert settings.database_url is not None
    engine = create_engine(settings.database_url)
    try:
        async with read_connection(engine) as conn:
            result = await conn.execute(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE pid <> pg_backend_pid() AND query LIKE :mark"
                ),
                {"mark": f"%{settings.database_schema}%"},
            )
            return int(result.scalar_one())
    finally:
        await engine.dispose()


async def _turn(
    client: httpx.AsyncClient, headers: dict[str, str], cid: str, key: str, *, keyed: bool = True
) -> httpx.Response:
    """A turn sent with ``key`` as its Idempotency-Key (``keyed``: its write is a transaction)
    or without one (its write is one statement, committed on its own)."""
    return await client.post(
        "/api/chat/agent",
        json={"message": f"turn {key}", "conversation_id": cid},
        headers={**headers, "Idempotency-Key": key} if keyed else headers,
    )


async def _conversation(client: httpx.AsyncClient, headers: dict[str, str]) -> str:
    agent = await create_agent(client, headers)
    r = await client.post(
        "/api/chat/agent", json={"message": "hello", "agent_id": agent["id"]}, headers=headers
    )
    assert r.status_code == 200, r.text
    return str(r.json()["conversation_id"])


async def _user_messages(
    client: httpx.AsyncClient, headers: dict[str, str], cid: str
) -> Counter[str]:
    r = await client.get(
        f"/api/conversations/{cid}/messages", params={"limit": 200}, headers=headers
    )
    assert r.status_code == 200, r.text
    return Counter(m["content"] for m in r.json()["messages"] if m["message_type"] == "user")


@POSTGRES
@pytest.mark.parametrize("keyed", [True, False])
async def test_idle_connections_killed_cost_no_turn(
    client: httpx.AsyncClient, runtime: Runtime, settings: Settings, keyed: bool
) -> None:
    headers = await register_and_login(client)
    cid = await _conversation(client, headers)
    for round_ in range(3):
        for i in range(3):  # connections in the pool, each with our schema in its last query
            r = await _turn(client, headers, cid, f"warm-{round_}-{i}", keyed=keyed)
            assert r.status_code == 200
        assert await _kill_own_backends(settings) > 0
        # at once: the driver may not have seen the socket close yet (the first-statement
        # retry's case), or has (the checkout's case); either way the turn is answered
        r = await _turn(client, headers, cid, f"after-kill-{round_}", keyed=keyed)
        assert r.status_code == 200, r.text
    contents = await _user_messages(client, headers, cid)
    assert all(contents[f"turn after-kill-{r}"] == 1 for r in range(3)), contents


@POSTGRES
async def test_backends_killed_under_load_lose_no_acknowledged_turn(
    client: httpx.AsyncClient, runtime: Runtime, settings: Settings
) -> None:
    headers = await register_and_login(client)
    conversations = [await _conversation(client, headers) for _ in range(4)]
    answered: dict[str, tuple[str, int]] = {}  # key -> (conversation, status)
    stop = asyncio.Event()

    async def clients(cid: str) -> None:
        n = 0
        while not stop.is_set():
            key = f"{cid[:8]}-{n}"
            r = await _turn(client, headers, cid, key)
            answered[key] = (cid, r.status_code)
            n += 1

    async def killer() -> int:
        killed = 0
        for _ in range(6):
            await asyncio.sleep(0.15)
            killed += await _kill_own_backends(settings)
        stop.set()
        return killed

    tasks = [asyncio.create_task(clients(cid)) for cid in conversations]
    killed = await killer()
    await asyncio.gather(*tasks)
    assert killed > 0
    statuses = {status for _, status in answered.values()}
    assert statuses <= {200, 503}, answered  # never a 500
    assert sum(1 for _, s in answered.values() if s == 200) > len(conversations)

    # every 503 is retried with its key, after the connections are gone: it succeeds at once
    # (well inside the Retry-After window)
    retried: dict[str, Any] = {}
    for key, (cid, status) in answered.items():
        if status == 503:
            loop = asyncio.get_running_loop()
            started = loop.time()
            r = await _turn(client, headers, cid, key)
            retried[key] = (r.status_code, loop.time() - started)
            answered[key] = (cid, r.status_code)
    assert all(s == 200 and t < RETRY_WINDOW_SECONDS for s, t in retried.values()), retried

    # acknowledged means committed: every 200 is in the conversation, and only once
    for cid in conversations:
        contents = await _user_messages(client, headers, cid)
        mine = [f"turn {k}" for k, (c, s) in answered.items() if c == cid and s == 200]
        assert all(contents[m] == 1 for m in mine), (mine, contents)
