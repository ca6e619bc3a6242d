"""Handoff (issue 13): the user names another agent for an existing conversation, or the agent
calls its ``handoff`` tool; from then on the conversation's current agent is the new one. Each
agent message records who wrote it (SQL and MongoDB), each move is an audit row and a
``handoff`` stream event, and the new agent sees the earlier messages labelled by writer."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelResponse,
    RetryPromptPart,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
)
from pydantic_ai.models.function import AgentInfo, DeltaToolCall, DeltaToolCalls, FunctionModel
from sqlalchemy import select

from employeevirtual.runtime import Runtime
from employeevirtual.stores.sql.tables import audit_log, conversations
from support.api import create_agent, register_and_login
from support.sse import read_all, serve

SSE = {"Accept": "text/event-stream"}


def _texts(messages: list[ModelMessage]) -> list[str]:
    return [
        p.content
        for m in messages
        if isinstance(m, ModelResponse)
        for p in m.parts
        if isinstance(p, TextPart)
    ]


def _speaker(name: str, seen: list[list[str]]) -> FunctionModel:
    """Answers ``<name> here``; records the earlier answers it was shown."""

    async def reply(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        seen.append(_texts(messages))
        return ModelResponse(parts=[TextPart(f"{name} here")])

    async def stream(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[str]:
        seen.append(_texts(messages))
        yield name
        yield " here"

    return FunctionModel(reply, stream_function=stream, model_name=f"openai-chat:handoff-{name}")


async def _agent(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    runtime: Runtime,
    model: FunctionModel,
    name: str,
    **fields: Any,
) -> dict[str, Any]:
    runtime.models.override(model.model_name, model)
    return await create_agent(client, headers, name=name, model=model.model_name, **fields)


async def _handoffs(runtime: Runtime, cid: str) -> list[dict[str, Any]]:
    async with runtime.engine.connect() as conn:
        rows = await conn.execute(
            select(audit_log)
            .where(audit_log.c.action == "conversation.handoff", audit_log.c.target_id == cid)
            .order_by(audit_log.c.created_at)
        )
        return [dict(r._mapping) for r in rows]


async def _current_agent(runtime: Runtime, cid: str) -> str:
    async with runtime.engine.connect() as conn:
        row = await conn.execute(
            select(conversations.c.agent_id).where(conversations.c.id == uuid.UUID(cid))
        )
        return str(row.scalar_one())


async def _listed(client: httpx.AsyncClient, headers: dict[str, str], agent_id: str) -> set[str]:
    r = await client.get("/api/conversations", params={"agent_id": agent_id}, headers=headers)
    assert r.status_code == 200, r.text
    return {c["id"] for c in r.json()["items"]}


async def test_the_user_hands_a_conversation_over(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    headers = await register_and_login(client)
    seen_a: list[list[str]] = []
    seen_b: list[list[str]] = []
    a = await _agent(client, headers, runtime, _speaker("Ana", seen_a), "Ana")
    b = await _agent(client, headers, runtime, _speaker("Bruno", seen_b), "Bruno")
    idle = await create_agent(client, headers, name="Idle")
    r = await client.post(
        "/api/chat/agent", json={"message": "hello", "agent_id": a["id"]}, headers=headers
    )
    assert r.status_code == 200, r.text
    cid = r.json()["conversation_id"]
    first_reply = r.json()["agent_message"]
    assert seen_a == [[]]
    r = await client.post(
        "/api/chat/agent",
        json={"message": "and you?", "conversation_id": cid, "agent_id": b["id"]},
        headers=headers,
    )
    assert r.status_code == 200, r.text
    reply = r.json()["agent_message"]
    assert reply["agent_id"] == b["id"] and reply["content"] == "Bruno here"
    assert reply["metadata"]["agent_name"] == "Bruno"
    assert reply["metadata"]["handoffs"] == [
        {"from_agent_id": a["id"], "to_agent_id": b["id"], "to_agent_name": "Bruno", "by": "user"}
    ]
    assert seen_b == [["[Ana]: Ana here"]]  # the earlier answer, labelled with its writer
    assert await _current_agent(runtime, cid) == b["id"]
    conv = (await client.get(f"/api/conversations/{cid}", headers=headers)).json()
    assert conv["agent_id"] == b["id"]
    # the next turn without agent_id goes to the current agent
    r = await client.post(
        "/api/chat/agent",
        json={"message": "still there?", "conversation_id": cid},
        headers=headers,
    )
    assert r.status_code == 200 and r.json()["agent_message"]["agent_id"] == b["id"]
    assert len(seen_a) == 1 and len(seen_b) == 2
    assert seen_b[1] == ["[Ana]: Ana here", "[Bruno]: Bruno here"]
    # audited once, in the turn's transaction
    (row,) = await _handoffs(runtime, cid)
    assert row["details"]["by"] == "user" and row["details"]["to_agent_id"] == b["id"]
    # each agent message says who wrote it, in both stores
    docs = {d["_id"]: d async for d in runtime.documents.messages.find({"conversation_id": cid})}
    assert docs[first_reply["id"]]["agent_id"] == a["id"]
    assert docs[reply["id"]]["agent_id"] == b["id"]
    page = (await client.get(f"/api/conversations/{cid}/messages", headers=headers)).json()
    writers = [m["agent_id"] for m in page["messages"] if m["message_type"] == "agent"]
    assert writers == [a["id"], b["id"], b["id"]]
    summary = await runtime.documents.conversations.find_one({"_id": cid})
    assert summary is not None and summary["agent_id"] == b["id"]
    # the list filter finds the conversations an agent took part in
    assert cid in await _listed(client, headers, a["id"])
    assert cid in await _listed(client, headers, b["id"])
    assert cid not in await _listed(client, headers, idle["id"])
    # the reconciler finds the stores agreeing (the current agent included)
    report = await runtime.reconciler.run(repair=False, deep=True)
    assert [d for d in report.drifts if d.conversation_id == cid] == []


async def test_only_agents_the_user_may_use_take_a_conversation(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    await register_and_login(client)  # the first account is the admin: not the one tested
    headers = await register_and_login(client)
    a = await _agent(client, headers, runtime, _speaker("Ana", []), "Ana")
    other = await register_and_login(client)
    private = await create_agent(client, other, name="Private")
    shared = await _agent(client, other, runtime, _speaker("Sol", []), "Sol", visibility="shared")
    r = await client.post(
        "/api/chat/agent", json={"message": "hello", "agent_id": a["id"]}, headers=headers
    )
    cid = r.json()["conversation_id"]
    for target in (private["id"], str(uuid.uuid4())):
        r = await client.post(
            "/api/chat/agent",
            json={"message": "move", "conversation_id": cid, "agent_id": target},
            headers=headers,
        )
        assert r.status_code == 404, r.text
        assert "Private" not in r.text
    assert await _current_agent(runtime, cid) == a["id"]
    assert await _handoffs(runtime, cid) == []
    r = await client.post(
        "/api/chat/agent",
        json={"message": "move", "conversation_id": cid, "agent_id": shared["id"]},
        headers=headers,
    )
    assert r.status_code == 200 and r.json()["agent_message"]["content"] == "Sol here"
    # nobody else can move the owner's conversation
    r = await client.post(
        "/api/chat/agent",
        json={"message": "mine now", "conversation_id": cid, "agent_id": private["id"]},
        headers=other,
    )
    assert r.status_code == 404
    assert await _current_agent(runtime, cid) == shared["id"]


def _handing_over(to: str, seen: list[Any]) -> FunctionModel:
    """Calls ``handoff`` naming a stranger first (and gets a retry), then ``to``."""

    async def reply(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        seen.append([t.name for t in info.output_tools])
        retried = [  # the refusal comes back as the tool's result, or as a retry prompt
            str(p.content)
            for m in messages
            if isinstance(m, ModelRequest)
            for p in m.parts
            if isinstance(p, RetryPromptPart | ToolReturnPart) and "unknown agent" in str(p.content)
        ]
        seen.extend(retried)
        target = to if retried else "Nobody"
        return ModelResponse(
            parts=[ToolCallPart("handoff", {"agent": target, "note": "a billing question"})]
        )

    return FunctionModel(reply, model_name=f"openai-chat:handoff-to-{to}")


async def test_an_agent_hands_over_with_its_tool(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    headers = await register_and_login(client)
    seen_a: list[Any] = []
    seen_b: list[list[str]] = []
    b = await _agent(client, headers, runtime, _speaker("Bruno", seen_b), "Bruno")
    a = await _agent(
        client, headers, runtime, _handing_over("bruno", seen_a), "Ana", delegate_ids=[b["id"]]
    )
    r = await client.post(
        "/api/chat/agent", json={"message": "my invoice", "agent_id": a["id"]}, headers=headers
    )
    assert r.status_code == 200, r.text
    body = r.json()
    cid, reply = body["conversation_id"], body["agent_message"]
    assert seen_a[0] == ["handoff"]
    assert "unknown agent 'Nobody'" in seen_a[2] and "Bruno" in seen_a[2]
    assert reply["content"] == "Bruno here" and reply["agent_id"] == b["id"]
    (move,) = reply["metadata"]["handoffs"]
    assert move["by"] == "agent" and move["note"] == "a billing question"
    assert (move["from_agent_id"], move["to_agent_id"]) == (a["id"], b["id"])
    assert "tool_calls" not in reply["metadata"]  # the handoff is not replayed as a tool call
    assert await _current_agent(runtime, cid) == b["id"]
    (row,) = await _handoffs(runtime, cid)
    assert row["details"]["by"] == "agent" and row["details"]["from_agent_id"] == a["id"]
    # the next turn is Bruno's
    r = await client.post(
        "/api/chat/agent", json={"message": "thanks", "conversation_id": cid}, headers=headers
    )
    assert r.json()["agent_message"]["agent_id"] == b["id"]
    assert len(seen_b) == 2 and len(seen_a) == 3  # Ana: two calls and the refusal she saw


async def test_a_shared_agent_never_hands_a_user_to_a_private_colleague(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    """The owner's shared agent may ask the owner's private agent, but cannot hand a user's
    conversation to it: that user could not continue it."""
    await register_and_login(client)  # the first account is the admin: not the one tested
    owner = await register_and_login(client)
    seen: list[list[str]] = []
    private = await _agent(client, owner, runtime, _speaker("Pia", []), "Pia")

    async def reply(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        names = [t.name for t in info.output_tools + info.function_tools]
        seen.append([n for n in names if n == "handoff" or n.startswith("ask_")])
        return ModelResponse(parts=[TextPart("on my own")])

    front = FunctionModel(reply, model_name="openai-chat:handoff-front")
    desk = await _agent(
        client, owner, runtime, front, "Desk", visibility="shared", delegate_ids=[private["id"]]
    )
    user = await register_and_login(client)
    r = await client.post(
        "/api/chat/agent", json={"message": "hi", "agent_id": desk["id"]}, headers=user
    )
    assert r.status_code == 200, r.text
    r = await client.post(
        "/api/chat/agent", json={"message": "hi", "agent_id": desk["id"]}, headers=owner
    )
    assert r.status_code == 200, r.text
    ask = f"ask_pia_{private['id'][:6]}"
    assert seen == [[ask], ["handoff", ask]]  # the user gets no handoff; the owner does


@pytest.fixture
async def http(app_and_runtime: tuple[Any, Runtime]) -> AsyncIterator[httpx.AsyncClient]:
    async with serve(app_and_runtime[0]) as url, httpx.AsyncClient(base_url=url, timeout=30) as c:
        yield c


async def test_handoffs_are_events_in_the_stream(http: httpx.AsyncClient, runtime: Runtime) -> None:
    headers = await register_and_login(http)
    b = await _agent(http, headers, runtime, _speaker("Bruno", []), "Bruno")

    async def reply(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        return ModelResponse(parts=[ToolCallPart("handoff", {"agent": b["id"]})])

    async def stream(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[Any]:
        yield {0: DeltaToolCall(name="handoff", json_args=f'{{"agent": "{b["id"]}"}}')}

    streaming = FunctionModel(reply, stream_function=stream, model_name="openai-chat:handoff-s")
    a = await _agent(http, headers, runtime, streaming, "Ana", delegate_ids=[b["id"]])
    c = await _agent(http, headers, runtime, _speaker("Cris", []), "Cris")
    async with http.stream(
        "POST",
        "/api/chat/agent",
        json={"message": "hi", "agent_id": a["id"]},
        headers={**headers, **SSE},
    ) as r:
        assert r.status_code == 200
        got = await read_all(r)
    kinds = [e.event for e in got]
    assert kinds[0] == "turn" and kinds[-1] == "done" and kinds.count("handoff") == 1
    handoff = next(e.data for e in got if e.event == "handoff")
    assert handoff["by"] == "agent" and handoff["to_agent_id"] == b["id"]
    done = got[-1].data
    assert done["agent_message"]["agent_id"] == b["id"]
    assert done["agent_message"]["content"] == "Bruno here"
    cid = done["conversation_id"]
    # the user moves it on, streamed: announced right after ``turn``
    async with http.stream(
        "POST",
        "/api/chat/agent",
        json={"message": "now Cris", "conversation_id": cid, "agent_id": c["id"]},
        headers={**headers, **SSE},
    ) as r:
        got = await read_all(r)
    assert [e.event for e in got[:2]] == ["turn", "handoff"]
    assert got[1].data["by"] == "user" and got[1].data["from_agent_id"] == b["id"]
    assert got[-1].data["agent_message"]["agent_id"] == c["id"]
    assert await _current_agent(runtime, cid) == c["id"]
    assert [r["details"]["by"] for r in await _handoffs(runtime, cid)] == ["agent", "user"]


_ = DeltaToolCalls  # the stream function's item type
