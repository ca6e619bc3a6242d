"""Idempotency-Key on POST /api/chat/agent: replay, 409, 422, per user, leases, failures, purge."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from pydantic_ai.exceptions import ModelHTTPError
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart
from pydantic_ai.models.function import AgentInfo, FunctionModel
from sqlalchemy import func, select

from employeevirtual.chat.idempotency import (
    IdempotencyClaim,
    IdempotencyKeys,
    StoredResponse,
    fingerprint,
)
from employeevirtual.errors import Conflict
from employeevirtual.runtime import Runtime
from employeevirtual.stores.sql.engine import write_transaction
from employeevirtual.stores.sql.idempotency import IdempotencyRepository, KeyOwner
from employeevirtual.stores.sql.tables import conversations, messages
from support.api import create_agent, register_and_login

CHAT = "/api/chat/agent"


class Gate:
    """A model that counts its runs and, when closed, waits to answer."""

    def __init__(self) -> None:
        self.calls = 0
        self.started = asyncio.Event()
        self.open = asyncio.Event()
        self.open.set()
        self.fail = False

    async def __call__(self, messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        self.calls += 1
        self.started.set()
        await self.open.wait()
        if self.fail:
            raise ModelHTTPError(status_code=500, model_name="gate", body="boom")
        return ModelResponse(parts=[TextPart(f"answer {self.calls}")], model_name="gate")


@pytest.fixture
def gate(runtime: Runtime) -> Gate:
    gate = Gate()
    runtime.models.override("openai-chat:gate", FunctionModel(gate, model_name="gate"))
    return gate


async def _setup(client: httpx.AsyncClient) -> tuple[dict[str, str], str]:
    headers = await register_and_login(client)
    agent = await create_agent(client, headers, model="openai-chat:gate")
    return headers, agent["id"]


async def _count(runtime: Runtime, table: Any) -> int:
    async with runtime.engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(table))).scalar_one())


async def test_retry_replays_the_first_response_without_running_the_agent(
    client: httpx.AsyncClient, runtime: Runtime, gate: Gate
) -> None:
    headers, agent = await _setup(client)
    keyed = {**headers, "Idempotency-Key": "k-1"}
    first = await client.post(CHAT, params={"message": "hi", "agent_id": agent}, headers=keyed)
    assert first.status_code == 200, first.text
    assert "Idempotent-Replayed" not in first.headers
    again = await client.post(CHAT, params={"message": "hi", "agent_id": agent}, headers=keyed)
    assert again.status_code == 200
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.content == first.content
    # the JSON form of the same request is the same request
    body = await client.post(CHAT, json={"message": "hi", "agent_id": agent}, headers=keyed)
    assert body.status_code == 200
    assert body.content == first.content
    assert gate.calls == 1
    assert await _count(runtime, messages) == 2
    assert await _count(runtime, conversations) == 1


async def test_same_key_for_another_request_is_422_and_keys_are_per_user(
    client: httpx.AsyncClient, runtime: Runtime, gate: Gate
) -> None:
    headers, agent = await _setup(client)
    keyed = {**headers, "Idempotency-Key": "shared-key"}
    r = await client.post(CHAT, json={"message": "one", "agent_id": agent}, headers=keyed)
    assert r.status_code == 200
    r = await client.post(CHAT, json={"message": "two", "agent_id": agent}, headers=keyed)
    assert r.status_code == 422
    assert "different request" in r.json()["detail"]

    other = await register_and_login(client)
    other_agent = await create_agent(client, other, model="openai-chat:gate")
    r2 = await client.post(
        CHAT,
        json={"message": "one", "agent_id": other_agent["id"]},
        headers={**other, "Idempotency-Key": "shared-key"},
    )
    assert r2.status_code == 200
    assert r2.json()["conversation_id"] != r.json().get("conversation_id")
    assert gate.calls == 2


async def test_concurrent_duplicate_gets_409_then_the_replay(
    client: httpx.AsyncClient, runtime: Runtime, gate: Gate
) -> None:
    headers, agent = await _setup(client)
    keyed = {**headers, "Idempotency-Key": str(uuid.uuid4())}
    gate.open.clear()
    request = {"message": "slow", "agent_id": agent}
    first = asyncio.create_task(client.post(CHAT, json=request, headers=keyed))
    await asyncio.wait_for(gate.started.wait(), 10)
    duplicate = await client.post(CHAT, json=request, headers=keyed)
    assert duplicate.status_code == 409
    assert duplicate.headers["Retry-After"] == "1"
    gate.open.set()
    done = await first
    assert done.status_code == 200
    replay = await client.post(CHAT, json=request, headers=keyed)
    assert replay.content == done.content
    assert gate.calls == 1
    assert await _count(runtime, messages) == 2


async def test_failed_agent_run_is_committed_and_its_502_replayed(
    client: httpx.AsyncClient, runtime: Runtime, gate: Gate
) -> None:
    headers, agent = await _setup(client)
    keyed = {**headers, "Idempotency-Key": "fails"}
    gate.fail = True
    first = await client.post(CHAT, json={"message": "x", "agent_id": agent}, headers=keyed)
    assert first.status_code == 502, first.text
    assert "conversation_id" in first.json()
    gate.fail = False
    again = await client.post(CHAT, json={"message": "x", "agent_id": agent}, headers=keyed)
    assert again.status_code == 502
    assert again.json() == first.json()
    assert gate.calls == 1
    assert await _count(runtime, messages) == 2  # the user's message and the error record


async def test_a_request_that_ends_before_its_commit_releases_the_key(
    client: httpx.AsyncClient, runtime: Runtime, gate: Gate
) -> None:
    headers, agent = await _setup(client)
    keyed = {**headers, "Idempotency-Key": "released"}
    missing = str(uuid.uuid4())
    r = await client.post(CHAT, json={"message": "x", "conversation_id": missing}, headers=keyed)
    assert r.status_code == 404
    r = await client.post(CHAT, json={"message": "x", "agent_id": agent}, headers=keyed)
    assert r.status_code == 200, r.text
    # input rejected before the key is looked at stores nothing either
    r = await client.post(CHAT, json={"message": " ", "agent_id": agent}, headers=keyed)
    assert r.status_code == 422
    assert "empty" in r.json()["detail"]


@pytest.mark.parametrize("key", ["", "x" * 256, "clé"])
async def test_malformed_key_is_422(
    client: httpx.AsyncClient, runtime: Runtime, gate: Gate, key: str
) -> None:
    headers, agent = await _setup(client)
    r = await client.post(
        CHAT,
        json={"message": "x", "agent_id": agent},
        headers={**headers, "Idempotency-Key": key.encode()},  # type: ignore[dict-item]
    )
    assert r.status_code == 422
    assert "Idempotency-Key" in r.json()["detail"]
    assert gate.calls == 0


async def test_pending_key_of_a_dead_owner_is_taken_over_after_its_lease(
    client: httpx.AsyncClient, runtime: Runtime, gate: Gate
) -> None:
    headers, agent = await _setup(client)
    me = (await client.get("/api/users/me", headers=headers)).json()["id"]
    request = {"message": "x", "agent_id": agent}
    print_ = fingerprint(
        route="POST /api/chat/agent",
        message="x",
        agent_id=uuid.UUID(agent),
        conversation_id=None,
    )
    past = datetime.now(UTC) - timedelta(seconds=5)
    async with write_transaction(runtime.engine) as conn:  # what a crashed owner leaves behind
        await IdempotencyRepository(conn).insert_pending(
            KeyOwner(uuid.UUID(me), "crashed", uuid.uuid4()),
            fingerprint=print_,
            now=past,
            locked_until=past,
        )
    r = await client.post(CHAT, json=request, headers={**headers, "Idempotency-Key": "crashed"})
    assert r.status_code == 200, r.text
    assert gate.calls == 1


async def test_a_slow_owner_whose_key_was_taken_over_rolls_its_turn_back(
    client: httpx.AsyncClient, runtime: Runtime, gate: Gate
) -> None:
    headers, agent_id = await _setup(client)
    user = await runtime.accounts.get_active(
        uuid.UUID((await client.get("/api/users/me", headers=headers)).json()["id"])
    )
    assert user is not None
    keys = IdempotencyKeys(runtime.engine, lease_seconds=0.1, ttl_seconds=86_400)

    def render(_: Any) -> StoredResponse:
        return StoredResponse(200, "{}")

    slow = await keys.claim(user_id=user.id, key="k", request_fingerprint="f", render=render)
    assert isinstance(slow, IdempotencyClaim)
    await asyncio.sleep(0.2)
    retry = await keys.claim(user_id=user.id, key="k", request_fingerprint="f", render=render)
    assert isinstance(retry, IdempotencyClaim)
    assert retry.token != slow.token
    with pytest.raises(Conflict):
        await runtime.chat.turn(
            user, message="x", agent_id=uuid.UUID(agent_id), conversation_id=None, idempotency=slow
        )
    assert await _count(runtime, messages) == 0
    await runtime.chat.turn(
        user, message="x", agent_id=uuid.UUID(agent_id), conversation_id=None, idempotency=retry
    )
    assert await _count(runtime, messages) == 2
    replay = await keys.claim(user_id=user.id, key="k", request_fingerprint="f", render=render)
    assert replay == StoredResponse(200, "{}")


async def test_keys_are_kept_a_day_then_purged(
    client: httpx.AsyncClient, runtime: Runtime, gate: Gate
) -> None:
    headers, agent = await _setup(client)
    keyed = {**headers, "Idempotency-Key": "old"}
    r = await client.post(CHAT, json={"message": "x", "agent_id": agent}, headers=keyed)
    assert r.status_code == 200
    now = datetime.now(UTC)
    assert await runtime.idempotency.purge(now=now + timedelta(hours=23)) == 0
    assert await runtime.idempotency.purge(now=now + timedelta(hours=24, seconds=1)) == 1
    r = await client.post(CHAT, json={"message": "x", "agent_id": agent}, headers=keyed)
    assert r.status_code == 200
    assert "Idempotent-Replayed" not in r.headers
    assert gate.calls == 2
