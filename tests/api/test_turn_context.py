"""The turn's one-statement read and its in-process context cache, against real stores."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
from pydantic_ai.messages import ModelMessage, ModelRequest, ModelResponse, TextPart
from pydantic_ai.models.function import AgentInfo, FunctionModel
from sqlalchemy import update

from employeevirtual.runtime import Runtime
from employeevirtual.stores.sql.tables import users
from support.api import create_agent, register_and_login

PROBE = "openai-chat:context-probe"


def _probe(seen: list[int]) -> FunctionModel:
    async def reply(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        seen.append(sum(1 for m in messages if isinstance(m, ModelRequest | ModelResponse)))
        await asyncio.sleep(0.05)
        return ModelResponse(parts=[TextPart("ok")])

    return FunctionModel(reply, model_name=PROBE)


async def _chat(client: httpx.AsyncClient, headers: dict[str, str], **body: Any) -> httpx.Response:
    return await client.post(
        "/api/chat/agent",
        json={"message": "hi", **{k: str(v) for k, v in body.items()}},
        headers=headers,
    )


async def test_concurrent_turns_never_leave_a_stale_context(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    seen: list[int] = []
    runtime.models.override(PROBE, _probe(seen))
    headers = await register_and_login(client)
    agent = await create_agent(client, headers, model=PROBE)
    r = await _chat(client, headers, agent_id=agent["id"])
    assert r.status_code == 200, r.text
    cid = r.json()["conversation_id"]
    # two turns read the same count; only one may seed the cache, the other must invalidate it
    results = await asyncio.gather(
        _chat(client, headers, conversation_id=cid), _chat(client, headers, conversation_id=cid)
    )
    assert [x.status_code for x in results] == [200, 200]
    r = await _chat(client, headers, conversation_id=cid)
    assert r.status_code == 200, r.text
    # the fourth turn sees all six earlier messages plus its own prompt
    assert seen[-1] == 7
    r = await _chat(client, headers, conversation_id=cid)
    assert seen[-1] == 9  # and the cached window, advanced by the fourth turn, is whole too


async def test_a_turn_committed_elsewhere_is_seen(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    """Another worker's turn moves message_count: the cached window is not used."""
    seen: list[int] = []
    runtime.models.override(PROBE, _probe(seen))
    headers = await register_and_login(client)
    agent = await create_agent(client, headers, model=PROBE)
    r = await _chat(client, headers, agent_id=agent["id"])
    cid = uuid.UUID(r.json()["conversation_id"])
    await _chat(client, headers, conversation_id=cid)
    assert seen[-1] == 3
    runtime.chat.context.forget(cid)  # a second worker, with its own (empty) cache...
    other = runtime.chat.context
    runtime.chat.context = type(other)(messages=other.messages)
    await _chat(client, headers, conversation_id=cid)  # ...commits a turn
    runtime.chat.context = other  # back on the first worker, whose cache is one turn behind
    other.advance(cid, base_count=4, base=[], added=[], message_count=4)  # stale: empty at 4
    assert other.get(cid, 4) == []
    await _chat(client, headers, conversation_id=cid)
    assert seen[-1] == 7  # 6 committed messages + the prompt: SQL, not the stale entry


async def test_deactivated_user_cannot_chat(client: httpx.AsyncClient, runtime: Runtime) -> None:
    headers = await register_and_login(client)
    agent = await create_agent(client, headers)
    r = await _chat(client, headers, agent_id=agent["id"])
    assert r.status_code == 200, r.text
    cid = r.json()["conversation_id"]
    async with runtime.engine.begin() as conn:
        await conn.execute(
            update(users).where(users.c.id == uuid.UUID(agent["user_id"])).values(is_active=False)
        )
    for body in ({"conversation_id": cid}, {"agent_id": agent["id"]}):
        r = await _chat(client, headers, **body)
        assert r.status_code == 401, r.text
        assert "deactivated" in r.json()["detail"]
