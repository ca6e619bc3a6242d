"""Delegation (issue 13): an agent asks a colleague through a tool; the colleague runs with its
own model and tools; usage is summed into the turn and attributed to each agent, in SQL, in
the reply's metadata (both stores) and in ``chat_analytics``; cycles are refused on save; the
depth cap and the turn's one usage limit hold. Models are FunctionModels."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelResponse,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
)
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai.usage import RequestUsage

from employeevirtual.runtime import Runtime
from support.api import create_agent, register_and_login


def _returned(messages: list[ModelMessage]) -> str | None:
    """The last tool result the model was given in this run, if the last request holds one."""
    last = messages[-1]
    if isinstance(last, ModelRequest):
        for part in last.parts:
            if isinstance(part, ToolReturnPart):
                return str(part.content)
    return None


def _asker(
    name: str,
    *,
    ask: str | None,
    usage: tuple[tuple[int, int], tuple[int, int]],
    seen_tools: list[list[str]],
) -> FunctionModel:
    """Asks the delegate whose tool name contains ``ask`` (first request), then answers with
    what it returned (second request); each request reports the given usage."""

    async def reply(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        seen_tools.append([t.name for t in info.function_tools])
        result = _returned(messages)
        if ask is None or result is not None:
            text = f"{name} says: {result}" if result is not None else f"{name} answer"
            i, o = usage[1]
            return ModelResponse(
                parts=[TextPart(text)], usage=RequestUsage(input_tokens=i, output_tokens=o)
            )
        tool = next(t.name for t in info.function_tools if ask in t.name)
        i, o = usage[0]
        return ModelResponse(
            parts=[ToolCallPart(tool, {"task": f"{name} needs help"})],
            usage=RequestUsage(input_tokens=i, output_tokens=o),
        )

    return FunctionModel(reply, model_name=f"openai-chat:team-{name}")


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


async def test_delegation_two_levels_deep_sums_and_attributes_usage(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    headers = await register_and_login(client)
    tools_a: list[list[str]] = []
    tools_b: list[list[str]] = []
    tools_c: list[list[str]] = []
    c = await _agent(
        client,
        headers,
        runtime,
        _asker("Carla", ask=None, usage=((0, 0), (1000, 100)), seen_tools=tools_c),
        "Carla",
    )
    b = await _agent(
        client,
        headers,
        runtime,
        _asker("Bruno", ask="carla", usage=((100, 10), (200, 20)), seen_tools=tools_b),
        "Bruno",
        delegate_ids=[c["id"]],
        description="knows the prices",
    )
    a = await _agent(
        client,
        headers,
        runtime,
        _asker("Ana", ask="bruno", usage=((10, 1), (20, 2)), seen_tools=tools_a),
        "Ana",
        delegate_ids=[b["id"]],
    )
    assert a["delegate_ids"] == [b["id"]]
    r = await client.post(
        "/api/chat/agent", json={"message": "quote me", "agent_id": a["id"]}, headers=headers
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["agent_message"]["content"] == "Ana says: Bruno says: Carla answer"
    assert body["agent_message"]["agent_id"] == a["id"]
    # the delegates ran with their own models and tools: Carla, at depth 2, has no colleague
    assert [n for n in tools_a[0] if n.startswith("ask_")] == [f"ask_bruno_{b['id'][:6]}"]
    assert [n for n in tools_b[0] if n.startswith("ask_")] == [f"ask_carla_{c['id'][:6]}"]
    assert tools_c == [[]]
    # summed into the turn: 10+20 + 100+200 + 1000 in, 1+2 + 10+20 + 100 out
    assert body["usage"]["input_tokens"] == 1330
    assert body["usage"]["output_tokens"] == 133
    cid = body["conversation_id"]
    conv = (await client.get(f"/api/conversations/{cid}", headers=headers)).json()
    assert conv["total_tokens"] == 1463
    # attributed in the reply's metadata: who was asked, what, what it answered, its own usage
    meta = body["agent_message"]["metadata"]
    assert meta["delegated_runs"] == 2
    first, second = meta["delegations"]
    assert first["agent_id"] == b["id"] and first["depth"] == 1 and first["parent"] is None
    assert first["task"] == "Ana needs help"
    assert first["answer"] == "Bruno says: Carla answer"
    assert (first["input_tokens"], first["output_tokens"]) == (300, 30)
    assert (first["total_input_tokens"], first["total_output_tokens"]) == (1300, 130)
    assert second["agent_id"] == c["id"] and second["depth"] == 2
    assert second["parent"] == first["id"] and second["parent_agent_id"] == b["id"]
    assert (second["input_tokens"], second["output_tokens"]) == (1000, 100)
    assert second["status"] == first["status"] == "success"
    assert second["execution_time"] >= 0 and first["execution_time"] >= second["execution_time"]
    # the same metadata in MongoDB
    stored = await runtime.documents.messages.find_one({"_id": body["agent_message"]["id"]})
    assert stored is not None and stored["metadata"]["delegations"] == meta["delegations"]
    # chat_analytics: one run per agent, each with its own share, adding up to the turn
    await runtime.acks.flush()  # written with the turn's ack, batched
    runs = [d async for d in runtime.documents.analytics.find({"conversation_id": cid})]
    by_agent = {d["agent_id"]: d for d in runs}
    assert len(runs) == 3
    assert (by_agent[a["id"]]["input_tokens"], by_agent[a["id"]]["output_tokens"]) == (30, 3)
    assert (by_agent[b["id"]]["input_tokens"], by_agent[b["id"]]["output_tokens"]) == (300, 30)
    assert (by_agent[c["id"]]["input_tokens"], by_agent[c["id"]]["output_tokens"]) == (1000, 100)
    assert by_agent[b["id"]]["status"] == by_agent[c["id"]]["status"] == "delegated"
    assert by_agent[c["id"]]["delegated_by"] == b["id"]
    assert sum(d["input_tokens"] for d in runs) == 1330
    # the usage API: one turn (Ana's), the tokens attributed per agent
    day = body["agent_message"]["timestamp"][:10]
    r = await client.get(
        "/api/analytics/usage",
        params={"from": day, "to": day, "group_by": "agent"},
        headers=headers,
    )
    assert r.status_code == 200, r.text
    rows = {row["agent_id"]: row for row in r.json()["rows"]}
    assert rows[a["id"]]["turns"] == 1 and rows[a["id"]]["delegated_runs"] == 2
    assert rows[b["id"]]["turns"] == 0 and rows[b["id"]]["input_tokens"] == 300
    assert rows[c["id"]]["turns"] == 0 and rows[c["id"]]["output_tokens"] == 100


async def test_cycles_self_and_foreign_private_delegates_are_refused(
    client: httpx.AsyncClient,
) -> None:
    headers = await register_and_login(client)
    c = await create_agent(client, headers, name="Carla")
    b = await create_agent(client, headers, name="Bruno", delegate_ids=[c["id"]])
    a = await create_agent(client, headers, name="Ana", delegate_ids=[b["id"]])
    r = await client.patch(
        f"/api/agents/{c['id']}", json={"delegate_ids": [a["id"]]}, headers=headers
    )
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert "cycle" in detail
    assert (
        f"Carla ({c['id']}) -> Ana ({a['id']}) -> Bruno ({b['id']}) -> Carla ({c['id']})" in detail
    )
    r = await client.patch(
        f"/api/agents/{a['id']}", json={"delegate_ids": [a["id"]]}, headers=headers
    )
    assert r.status_code == 422 and "itself" in r.json()["detail"]
    # unchanged by the refusals
    assert (await client.get(f"/api/agents/{c['id']}", headers=headers)).json()[
        "delegate_ids"
    ] == []
    # another user's private agent cannot be a delegate; their shared one can
    other = await register_and_login(client)
    private = await create_agent(client, other, name="Private")
    shared = await create_agent(client, other, name="Shared", visibility="shared")
    missing = str(uuid.uuid4())
    for wanted in ([private["id"]], [missing]):
        r = await client.post(
            "/api/agents", json={"name": "X", "delegate_ids": wanted}, headers=headers
        )
        assert r.status_code == 422 and wanted[0] in r.json()["detail"], r.text
    r = await client.patch(
        f"/api/agents/{a['id']}", json={"delegate_ids": [private["id"]]}, headers=headers
    )
    assert r.status_code == 422, r.text
    r = await client.patch(
        f"/api/agents/{a['id']}", json={"delegate_ids": [shared["id"], b["id"]]}, headers=headers
    )
    assert r.status_code == 200 and r.json()["delegate_ids"] == [shared["id"], b["id"]]


async def test_the_depth_cap_holds(client: httpx.AsyncClient, runtime: Runtime) -> None:
    runtime.chat.runs.delegation_depth = 1
    headers = await register_and_login(client)
    tools_b: list[list[str]] = []
    c = await _agent(
        client,
        headers,
        runtime,
        _asker("Cid", ask=None, usage=((0, 0), (5, 5)), seen_tools=[]),
        "Cid",
    )
    b = await _agent(
        client,
        headers,
        runtime,
        _asker("Bia", ask=None, usage=((0, 0), (5, 5)), seen_tools=tools_b),
        "Bia",
        delegate_ids=[c["id"]],
    )
    a = await _agent(
        client,
        headers,
        runtime,
        _asker("Ari", ask="bia", usage=((5, 5), (5, 5)), seen_tools=[]),
        "Ari",
        delegate_ids=[b["id"]],
    )
    r = await client.post(
        "/api/chat/agent", json={"message": "go", "agent_id": a["id"]}, headers=headers
    )
    assert r.status_code == 200, r.text
    assert tools_b == [[]]  # at the cap, Bia is offered no colleague though she has one
    assert r.json()["agent_message"]["metadata"]["delegated_runs"] == 1


async def test_one_usage_limit_covers_the_delegates(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    """The delegate shares the turn's request limit: it is stopped inside its own run."""
    runtime.runner.request_limit = 4
    headers = await register_and_login(client)
    calls: list[int] = []

    async def busy(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        calls.append(1)  # keeps computing, never answers
        return ModelResponse(parts=[ToolCallPart("calculator", {"expression": "1+1"})])

    worker = FunctionModel(busy, model_name="openai-chat:team-busy")
    b = await _agent(client, headers, runtime, worker, "Busy", tools=["calculator"])
    a = await _agent(
        client,
        headers,
        runtime,
        _asker("Boss", ask="busy", usage=((5, 5), (5, 5)), seen_tools=[]),
        "Boss",
        delegate_ids=[b["id"]],
    )
    r = await client.post(
        "/api/chat/agent", json={"message": "go", "agent_id": a["id"]}, headers=headers
    )
    assert r.status_code == 422, r.text
    assert "usage limit" in r.json()["detail"]
    # Boss made request 1; Busy requests 2, 3 and 4; the 5th was refused (its own default
    # limit of 50 would have let it go on)
    assert len(calls) == 3


async def test_the_offline_model_asks_a_colleague_by_name(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    """The built-in offline model (no FunctionModel): "ask <name>: <task>" calls that colleague's
    tool, so the console and a demo can show a delegated run without a provider."""
    headers = await register_and_login(client)
    billing = await create_agent(client, headers, name="Billing Desk", model="offline")
    desk = await create_agent(
        client, headers, name="Front", model="offline", delegate_ids=[billing["id"]]
    )
    r = await client.post(
        "/api/chat/agent",
        json={"message": "ask Billing Desk: what is owed on invoice 7?", "agent_id": desk["id"]},
        headers=headers,
    )
    assert r.status_code == 200, r.text
    reply = r.json()["agent_message"]
    (run,) = reply["metadata"]["delegations"]
    assert run["agent_id"] == billing["id"] and run["agent_name"] == "Billing Desk"
    assert run["task"] == "what is owed on invoice 7?"
    assert run["status"] == "success"
    assert "what is owed on invoice 7?" in run["answer"]  # the colleague's own offline answer
    assert reply["content"].startswith("[offline model] My colleague answered:")
    # a name that is not a colleague is an ordinary message
    r = await client.post(
        "/api/chat/agent",
        json={"message": "ask Nobody: anything?", "agent_id": desk["id"]},
        headers=headers,
    )
    assert "delegations" not in r.json()["agent_message"]["metadata"]
