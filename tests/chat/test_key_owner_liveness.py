"""A pending Idempotency-Key whose owner is known to be gone is taken over at once; a live
owner keeps its lease (issue 9, item 2). Owners are real ``server_instances`` rows; the dead pid
is a real process that has exited."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import httpx
import pytest

from employeevirtual.chat.idempotency import IdempotencyClaim, IdempotencyKeys
from employeevirtual.health.instance import ServerInstance
from employeevirtual.runtime import Runtime
from employeevirtual.stores.sql.idempotency import IdempotencyRepository
from employeevirtual.stores.sql.instances import InstanceRepository
from support.key_owners import dead_pid, other_owner, pending_key

CHAT = "/api/chat/agent"


@pytest.mark.parametrize("how", ["pid exited on this host", "heartbeat stopped", "stopped"])
async def test_a_key_whose_owner_is_gone_is_taken_over_at_once(
    client: httpx.AsyncClient, runtime: Runtime, how: str
) -> None:
    me = runtime.instance
    if how == "pid exited on this host":
        owner = await other_owner(
            runtime, hostname=me.hostname, pid=await dead_pid(), boot=me.boot_id, heartbeat_age=0
        )
    elif how == "heartbeat stopped":  # any host: only the shared SQL row is consulted
        owner = await other_owner(
            runtime, hostname="elsewhere.example", pid=1, boot="other", heartbeat_age=3600
        )
    else:
        owner = await other_owner(
            runtime, hostname="elsewhere.example", pid=1, boot="x", heartbeat_age=0
        )
        async with runtime.engine.begin() as conn:
            await InstanceRepository(conn).stopped(owner, now=datetime.now(UTC))
    headers, body = await pending_key(client, runtime, owner, f"gone-{how}")
    # before: 409 "still being processed" until the 90 s lease ran out
    r = await client.post(CHAT, json=body, headers=headers)
    assert r.status_code == 200, r.text


async def test_a_live_owner_on_another_host_keeps_its_lease(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    owner = await other_owner(
        runtime, hostname="elsewhere.example", pid=1, boot="other", heartbeat_age=0
    )
    headers, body = await pending_key(client, runtime, owner, "alive")
    r = await client.post(CHAT, json=body, headers=headers)
    assert r.status_code == 409, r.text
    assert "still being processed" in r.json()["detail"]


async def test_this_server_records_itself_as_the_owner_and_beats(runtime: Runtime) -> None:
    me = runtime.instance
    assert me.registered
    async with runtime.engine.connect() as conn:
        row = await InstanceRepository(conn).get(me.id)
    assert row is not None and row.pid == me.pid and row.stopped_at is None
    before = row.heartbeat_at
    await asyncio.sleep(0.01)
    assert await me.beat()
    async with runtime.engine.connect() as conn:
        row = await InstanceRepository(conn).get(me.id)
    assert row is not None and row.heartbeat_at > before
    # a key this server claims names it; another instance judging it sees a live owner
    user = await runtime.accounts.register(
        email=f"o-{uuid.uuid4().hex[:6]}@example.com", password="a-long-passphrase-9", name="O"
    )
    claim = await runtime.idempotency.claim(
        user_id=user.id,
        key="mine",
        request_fingerprint="f",
    )
    assert isinstance(claim, IdempotencyClaim)
    async with runtime.engine.connect() as conn:
        stored = await IdempotencyRepository(conn).get(user_id=user.id, key="mine")
    assert stored is not None and stored.owner_id == me.id
    other = ServerInstance(runtime.engine)
    async with runtime.engine.connect() as conn:
        assert not await other.is_gone(me.id, conn)
    # a retry through another server's keys (same database) still gets 409 under the lease
    keys = IdempotencyKeys(runtime.engine, lease_seconds=90, ttl_seconds=86_400, instance=other)
    with pytest.raises(Exception, match="still being processed"):
        await keys.claim(
            user_id=user.id,
            key="mine",
            request_fingerprint="f",
        )
