"""A turn's other shapes write to MongoDB through an index, never a scan: a streamed turn and a
cancelled one, an edit of the last user message, memories saved, edited and forgotten, a
delegation to a colleague (``conftest``: the scan-logging SecantusDB)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelResponse,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
)
from pydantic_ai.models.function import AgentInfo, FunctionModel

from employeevirtual.runtime import Runtime
from support.api import create_agent, register_and_login
from support.live import paced
from support.memory import PROBE_MODEL, install_probe
from support.scan_logging_secantus import ScanLoggingSecantus
from support.sse import events, read_all, serve

SSE = {"Accept": "text/event-stream"}


@pytest.fixture
async def http(app_and_runtime: tuple[Any, Runtime]) -> AsyncIterator[httpx.AsyncClient]:
    """Streams need a real server."""
    async with serve(app_and_runtime[0]) as url, httpx.AsyncClient(base_url=url, timeout=30) as c:
        yield c


async def _say(
    client: httpx.AsyncClient, headers: dict[str, str], message: str, **ids: str
) -> dict[str, Any]:
    r = await client.post("/api/chat/agent", json={"message": message, **ids}, headers=headers)
    assert r.status_code == 200, r.text
    return dict(r.json())


async def _settled(runtime: Runtime) -> None:
    """Every write the turns left behind has reached MongoDB."""
    await runtime.acks.flush()
    assert runtime.memory is not None
    await runtime.memory.worker.drain()
    await runtime.relay.run_once()


async def test_a_streamed_turn_and_a_cancelled_one_scan_no_collection(
    http: httpx.AsyncClient, runtime: Runtime, scanning: ScanLoggingSecantus
) -> None:
    headers = await register_and_login(http)
    model = paced("openai-chat:scan-paced", delay=0.03)
    runtime.models.override(model.model_name, model)
    agent = await create_agent(http, headers, model=model.model_name)
    async with http.stream(
        "POST",
        "/api/chat/agent",
        json={"message": "hi", "agent_id": agent["id"]},
        headers={**headers, **SSE},
    ) as r:
        assert r.status_code == 200
        got = await read_all(r)
    assert got[-1].event == "done"
    cid = got[-1].data["conversation_id"]
    async with http.stream(
        "POST",
        "/api/chat/agent",
        json={"message": "and again", "conversation_id": cid},
        headers={**headers, **SSE},
    ) as r:
        turn_id = r.headers["X-Turn-Id"]
        deltas = 0
        async for e in events(r):
            if e is not None and e.event == "delta":
                deltas += 1
                if deltas == 2:
                    c = await http.post(f"/api/chat/turns/{turn_id}/cancel", headers=headers)
                    assert c.status_code == 202, c.text
            if e is not None and e.event == "done":
                assert e.data["agent_message"]["metadata"]["cancelled"] is True
    await _settled(runtime)
    doc = await runtime.documents.conversations.find_one({"_id": cid})
    assert doc is not None and doc["metadata"]["last_seq"] == 4

    assert scanning.scans() == []


async def test_an_edit_of_the_last_user_message_scans_no_collection(
    client: httpx.AsyncClient, runtime: Runtime, scanning: ScanLoggingSecantus
) -> None:
    headers = await register_and_login(client)
    agent = await create_agent(client, headers)
    first = await _say(client, headers, "q1", agent_id=agent["id"])
    cid = first["conversation_id"]
    second = await _say(client, headers, "q2", conversation_id=cid)
    r = await client.patch(
        f"/api/conversations/{cid}/messages/{second['user_message']['id']}",
        json={"content": "q2, better"},
        headers=headers,
    )
    assert r.status_code == 200, r.text
    assert r.json()["user_message"]["is_edited"] is True
    await _settled(runtime)

    assert scanning.scans() == []


async def test_memories_saved_edited_and_forgotten_scan_no_collection(
    client: httpx.AsyncClient, runtime: Runtime, scanning: ScanLoggingSecantus
) -> None:
    install_probe(runtime)
    headers = await register_and_login(client)
    agent = await create_agent(client, headers, model=PROBE_MODEL)
    said = await _say(client, headers, "remember: Works at Acme Corp.", agent_id=agent["id"])
    cid = said["conversation_id"]
    for text in ("remember: Lives in Porto.", "remember: Has a dog named Rex.", "forget: porto"):
        await _say(client, headers, text, conversation_id=cid)
    await _settled(runtime)
    copies = runtime.documents.db["user_memories"]
    assert await copies.count_documents({}) == 2
    items = (await client.get("/api/memories", headers=headers)).json()["items"]
    acme, rex = sorted(items, key=lambda m: m["content"])[::-1]
    r = await client.patch(
        f"/api/memories/{rex['id']}", json={"content": "Has a dog named Max."}, headers=headers
    )
    assert r.status_code == 200, r.text
    r = await client.delete(f"/api/memories/{acme['id']}", headers=headers)
    assert r.status_code == 204
    r = await client.delete("/api/memories", params={"agent_id": agent["id"]}, headers=headers)
    assert r.status_code == 200 and r.json() == {"deleted": 1}
    await _settled(runtime)
    assert await copies.count_documents({}) == 0

    assert scanning.scans() == []


def _asker(name: str, ask: str | None) -> FunctionModel:
    """Asks the colleague whose tool name holds ``ask``, then answers with what it said."""

    async def reply(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        last = messages[-1]
        returned = [p for p in last.parts if isinstance(p, ToolReturnPart)]
        if ask is None or (isinstance(last, ModelRequest) and returned):
            said = returned[-1].model_response_str() if returned else "nothing to ask"
            return ModelResponse(parts=[TextPart(f"{name} says: {said}")])
        tool = next(t.name for t in info.function_tools if ask in t.name)
        return ModelResponse(parts=[ToolCallPart(tool, {"task": f"{name} needs help"})])

    return FunctionModel(reply, model_name=f"openai-chat:scan-team-{name}")


async def test_a_delegation_scans_no_collection(
    client: httpx.AsyncClient, runtime: Runtime, scanning: ScanLoggingSecantus
) -> None:
    headers = await register_and_login(client)
    models = {name: _asker(name, ask) for name, ask in (("Bruno", None), ("Ana", "bruno"))}
    for model in models.values():
        runtime.models.override(model.model_name, model)
    bruno = await create_agent(
        client, headers, name="Bruno", model=models["Bruno"].model_name, description="knows"
    )
    ana = await create_agent(
        client, headers, name="Ana", model=models["Ana"].model_name, delegate_ids=[bruno["id"]]
    )
    body = await _say(client, headers, "quote me", agent_id=ana["id"])
    assert body["agent_message"]["metadata"]["delegated_runs"] == 1
    await _say(client, headers, "once more", conversation_id=body["conversation_id"])
    await _settled(runtime)

    assert scanning.scans() == []
