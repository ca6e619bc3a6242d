"""The key-owner check reads on the key's own transaction, never on a second pooled connection.

A retry of a pending Idempotency-Key asks whether its owner is gone while the key's row is held
in a write transaction. It used to take a second connection from the pool for that read: on a
pool of 10 (the default), ten such retries at once each held one connection and waited for
another, and the pool stayed empty until its 120 s timeout, every other SQL user of the process
waiting with them. On a pool of one connection a single retry shows it.
"""

from __future__ import annotations

import asyncio
import os

import httpx
import pytest

from employeevirtual.runtime import Runtime
from employeevirtual.settings import Settings
from support.key_owners import dead_pid, other_owner, pending_key

pytestmark = [
    pytest.mark.skipif(
        not os.environ.get("EV_TEST_POSTGRES_URL"), reason="PostgreSQL only (EV_TEST_POSTGRES_URL)"
    ),
    pytest.mark.parametrize("backend", ["postgres"]),  # SQLite has no pool size to set
]

CHAT = "/api/chat/agent"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"database_pool_size": 1, "database_max_overflow": 0})


async def test_a_live_owner_is_checked_on_the_keys_own_connection(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    owner = await other_owner(
        runtime, hostname="elsewhere.example", pid=1, boot="other", heartbeat_age=0
    )
    headers, body = await pending_key(client, runtime, owner, "alive-on-one-connection")
    async with asyncio.timeout(20):  # before: the pool's 120 s timeout, then a 409
        r = await client.post(CHAT, json=body, headers=headers)
    assert r.status_code == 409, r.text
    assert "still being processed" in r.json()["detail"]


async def test_a_gone_owners_key_is_taken_over_on_one_connection(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    me = runtime.instance
    owner = await other_owner(
        runtime, hostname=me.hostname, pid=await dead_pid(), boot=me.boot_id, heartbeat_age=0
    )
    headers, body = await pending_key(client, runtime, owner, "gone-on-one-connection")
    async with asyncio.timeout(20):
        r = await client.post(CHAT, json=body, headers=headers)
    assert r.status_code == 200, r.text
