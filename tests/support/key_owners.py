"""Pending Idempotency-Keys held by other server processes: ``server_instances`` rows as
another server would have left them, and a real exited pid."""

from __future__ import annotations

import asyncio
import sys
import uuid
from datetime import UTC, datetime, timedelta

import httpx

from employeevirtual.chat.idempotency import fingerprint
from employeevirtual.runtime import Runtime
from employeevirtual.stores.sql.idempotency import IdempotencyRepository, KeyOwner
from employeevirtual.stores.sql.instances import InstanceRepository
from support.api import create_agent, register_and_login


async def dead_pid() -> int:
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", "pass")
    await proc.wait()
    return proc.pid


async def other_owner(
    runtime: Runtime, *, hostname: str, pid: int, boot: str, heartbeat_age: float
) -> uuid.UUID:
    """A server_instances row as another server process would have left it."""
    owner = uuid.uuid4()
    now = datetime.now(UTC)
    async with runtime.engine.begin() as conn:
        repo = InstanceRepository(conn)
        await repo.register(
            instance_id=owner,
            hostname=hostname,
            pid=pid,
            boot_id=boot,
            now=now - timedelta(seconds=heartbeat_age),
        )
    return owner


async def pending_key(
    client: httpx.AsyncClient, runtime: Runtime, owner: uuid.UUID, key: str
) -> tuple[dict[str, str], dict[str, str]]:
    """A pending key under a 90 s lease held by ``owner``, and the request that retries it."""
    headers = await register_and_login(client)
    agent = (await create_agent(client, headers))["id"]
    me = (await client.get("/api/users/me", headers=headers)).json()["id"]
    now = datetime.now(UTC)
    async with runtime.engine.begin() as conn:
        await IdempotencyRepository(conn).insert_pending(
            KeyOwner(uuid.UUID(me), key, uuid.uuid4()),
            fingerprint=fingerprint(
                route="POST /api/chat/agent",
                message="again",
                agent_id=uuid.UUID(agent),
                conversation_id=None,
            ),
            now=now,
            locked_until=now + timedelta(seconds=90),
            owner_id=owner,
        )
    return {**headers, "Idempotency-Key": key}, {"message": "again", "agent_id": agent}
