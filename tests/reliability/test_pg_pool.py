"""Under a steady load past its size, the PostgreSQL pool keeps its connections.

An overflow connection is closed when it comes back to a full pool, so a load that needs more
connections than ``pool_size`` for a while opened and closed them all the time: each one a
PostgreSQL backend forked and the turn's statements prepared again (64 instant turns in flight:
120 turns/s on a pool of 20 + 20 overflow, 180 on 10 + 0; docs/bench.md). The default pool has
no overflow: its connections open once and the rest of the load waits for one.
"""

from __future__ import annotations

import asyncio
import os

import httpx
import pytest
from sqlalchemy import event

from employeevirtual.runtime import Runtime
from employeevirtual.settings import Settings
from support.api import create_agent, register_and_login

pytestmark = [
    pytest.mark.skipif(
        not os.environ.get("EV_TEST_POSTGRES_URL"), reason="PostgreSQL only (EV_TEST_POSTGRES_URL)"
    ),
    pytest.mark.parametrize("backend", ["postgres"]),
]

IN_FLIGHT = 48
ROUNDS = 3


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """One user's many turns at once: the abuse limits stay out of it."""
    return settings.model_copy(update={"rate_limit_chat": 1_000_000, "max_concurrent_turns": 1_000})


async def test_turns_past_the_pool_size_open_each_connection_once(
    client: httpx.AsyncClient, runtime: Runtime, settings: Settings
) -> None:
    headers = await register_and_login(client)
    agent = await create_agent(client, headers)
    conversations = []
    for _ in range(IN_FLIGHT):
        r = await client.post(
            "/api/chat/agent", json={"message": "hello", "agent_id": agent["id"]}, headers=headers
        )
        assert r.status_code == 200, r.text
        conversations.append(r.json()["conversation_id"])

    pool = runtime.engine.sync_engine
    opened: list[object] = []
    closed: list[object] = []
    event.listen(pool, "connect", lambda conn, _record: opened.append(conn))
    event.listen(pool, "close", lambda conn, _record: closed.append(conn))
    busiest = 0

    def checked_out(*_: object) -> None:
        nonlocal busiest
        busiest = max(busiest, runtime.engine.pool.checkedout())

    event.listen(pool, "checkout", checked_out)

    async def turns(cid: str) -> list[int]:
        statuses = []
        for i in range(ROUNDS):
            r = await client.post(
                "/api/chat/agent",
                json={"message": f"turn {i}", "conversation_id": cid},
                headers=headers,
            )
            statuses.append(r.status_code)
        return statuses

    results = await asyncio.gather(*(turns(cid) for cid in conversations))
    assert all(s == 200 for statuses in results for s in statuses), results
    # the load needed more connections than the pool holds at once, and waited for them instead
    # of opening and closing extra ones
    assert closed == [], f"{len(closed)} connections closed under load ({len(opened)} opened)"
    assert busiest == settings.database_pool_size
    assert len(opened) <= settings.database_pool_size
    assert runtime.engine.pool.checkedin() <= settings.database_pool_size
