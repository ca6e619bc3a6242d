"""Agents calling tools on real MCP servers (Streamable HTTP and stdio processes): results on
the record in both stores and in the stream; a misbehaving or down server fails that call with
a message the model sees, never the turn; calls per turn capped; secrets never in the logs."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from pydantic_ai.messages import (
    ModelMessage,
    ModelResponse,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
    UserPromptPart,
)
from pydantic_ai.models.function import AgentInfo, DeltaToolCall, DeltaToolCalls, FunctionModel

from employeevirtual.runtime import Runtime
from employeevirtual.settings import Settings
from support.access import Account, account, app_client
from support.live import stored_messages
from support.mcp_process import STDIO_COMMAND
from support.server import serving
from support.server_process import free_port
from support.sse import read_all, serve
from support.stores import mongo_messages

SECRET = "mcp-secret-" + "z" * 24
SSE = {"Accept": "text/event-stream"}


def _this_turn(messages: list[ModelMessage]) -> list[ModelMessage]:
    starts = [
        i for i, m in enumerate(messages) if any(isinstance(p, UserPromptPart) for p in m.parts)
    ]
    return messages[starts[-1] :]


class Caller:
    """A FunctionModel that calls each tool in turn (one per response), then answers with
    every result it was given; ``seen`` keeps those results as the model received them."""

    def __init__(self, name: str, calls: list[tuple[str, dict[str, Any]]]) -> None:
        self.calls = calls
        self.seen: list[ToolReturnPart] = []
        self.model = FunctionModel(self.reply, stream_function=self.stream, model_name=name)

    async def reply(self, messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        done = [p for m in _this_turn(messages) for p in m.parts if isinstance(p, ToolReturnPart)]
        if len(done) < len(self.calls):
            name, args = self.calls[len(done)]
            return ModelResponse(parts=[ToolCallPart(name, args, tool_call_id=f"c{len(done)}")])
        self.seen = done
        return ModelResponse(parts=[TextPart(" | ".join(str(p.content)[:100] for p in done))])

    async def stream(
        self, messages: list[ModelMessage], info: AgentInfo
    ) -> AsyncIterator[str | DeltaToolCalls]:
        part = (await self.reply(messages, info)).parts[0]
        if isinstance(part, ToolCallPart):
            args = json.dumps(part.args)
            yield {0: DeltaToolCall(part.tool_name, args, tool_call_id=part.tool_call_id)}
        else:
            assert isinstance(part, TextPart)
            yield part.content


async def _setup(
    client: httpx.AsyncClient,
    runtime: Runtime,
    caller: Caller,
    server: dict[str, Any],
    tools: list[str],
) -> tuple[Account, dict[str, Any]]:
    admin = await account(client, name="Admin")
    r = await client.post("/api/admin/mcp-servers", json=server, headers=admin.headers)
    assert r.status_code == 201 and r.json()["status"] == "available", r.text
    runtime.models.override(caller.model.model_name, caller.model)
    r = await client.post(
        "/api/agents",
        json={"name": "Clerk", "model": caller.model.model_name, "tools": tools},
        headers=admin.headers,
    )
    assert r.status_code == 201, r.text
    return admin, r.json()


async def _in_mongo(runtime: Runtime, conversation_id: str, count: int) -> None:
    for _ in range(200):
        if len(await mongo_messages(runtime, conversation_id)) >= count:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the turn never reached MongoDB")


def _http(url: str, **extra: Any) -> dict[str, Any]:
    return {"name": "orders", "transport": "http", "url": url, **extra}


async def test_an_agent_calls_http_tools_results_in_both_stores_and_the_stream(
    app_and_runtime: tuple[Any, Runtime], client: httpx.AsyncClient, mcp_server: tuple[str, int]
) -> None:
    caller = Caller(
        "openai-chat:mcp-http",
        [("orders__lookup_order", {"order_id": "A-42"}), ("orders__key_fingerprint", {})],
    )
    runtime = app_and_runtime[1]
    admin, agent = await _setup(
        client,
        runtime,
        caller,
        _http(mcp_server[0], headers={"X-Api-Key": SECRET}),
        ["orders/lookup_order", "orders/key_fingerprint"],
    )
    r = await client.post(
        "/api/chat/agent",
        json={"message": "where is A-42?", "agent_id": agent["id"]},
        headers=admin.headers,
    )
    assert r.status_code == 200, r.text
    fingerprint = hashlib.sha256(SECRET.encode()).hexdigest()[:12]  # the header reached it
    assert r.json()["agent_message"]["content"] == f"order A-42: shipped | {fingerprint}"
    calls = r.json()["agent_message"]["metadata"]["tool_calls"]
    assert calls == [
        {
            "id": "c0",
            "name": "orders__lookup_order",
            "args": {"order_id": "A-42"},
            "result": "order A-42: shipped",
            "truncated": False,
        },
        {
            "id": "c1",
            "name": "orders__key_fingerprint",
            "args": {},
            "result": fingerprint,
            "truncated": False,
        },
    ]
    cid = r.json()["conversation_id"]
    stored = await stored_messages(runtime, cid)
    assert stored[1]["message_metadata"]["tool_calls"] == calls
    await _in_mongo(runtime, cid, 2)
    doc = await runtime.documents.messages.find_one({"_id": str(stored[1]["id"])})
    assert doc is not None and doc["metadata"]["tool_calls"] == calls
    # streamed: the call and its result are events, as for the built-in tools
    async with (
        serve(app_and_runtime[0]) as base,
        httpx.AsyncClient(base_url=base) as http,
        http.stream(
            "POST",
            "/api/chat/agent",
            json={"message": "again", "conversation_id": cid},
            headers={**admin.headers, **SSE},
        ) as streamed,
    ):
        got = await read_all(streamed)
    kinds = [e.event for e in got]
    assert kinds[:5] == ["turn", "tool_call", "tool_result", "tool_call", "tool_result"]
    assert got[2].data == {
        "id": "c0",
        "name": "orders__lookup_order",
        "result": "order A-42: shipped",
        "truncated": False,
    }
    assert got[-1].event == "done"
    assert got[-1].data["agent_message"]["metadata"]["tool_calls"] == calls


@pytest.fixture
def backend() -> str:
    """The rest is about the tools, not the stores: SQLite only."""
    return "sqlite"


async def test_an_agent_calls_stdio_tools_in_a_clean_environment(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    caller = Caller(
        "openai-chat:mcp-stdio",
        [
            ("local__lookup_order", {"order_id": "B-7"}),
            ("local__key_fingerprint", {}),
            ("local__environment_names", {}),
        ],
    )
    server = {
        "name": "local",
        "transport": "stdio",
        "command": STDIO_COMMAND,
        "env": {"ORDERS_KEY": SECRET},
    }
    tools = ["local/lookup_order", "local/key_fingerprint", "local/environment_names"]
    admin, agent = await _setup(client, runtime, caller, server, tools)
    r = await client.post(
        "/api/chat/agent", json={"message": "B-7?", "agent_id": agent["id"]}, headers=admin.headers
    )
    assert r.status_code == 200, r.text
    results = [c["result"] for c in r.json()["agent_message"]["metadata"]["tool_calls"]]
    assert results[0] == "order B-7: shipped"
    assert results[1] == hashlib.sha256(SECRET.encode()).hexdigest()[:12]
    names = json.loads(results[2])
    assert "ORDERS_KEY" in names and "PATH" in names
    assert not [n for n in names if n.startswith("EV_")]  # none of this server's settings


async def test_a_misbehaving_server_fails_only_that_call(
    client: httpx.AsyncClient, runtime: Runtime, settings: Settings, mcp_server: tuple[str, int]
) -> None:
    caller = Caller(
        "openai-chat:mcp-hostile",
        [
            ("orders__hang", {}),
            ("orders__huge", {}),
            ("orders__malformed", {}),
            ("orders__malformed_result", {}),
            ("orders__explode", {}),
            ("orders__lookup_order", {"order_id": "C-1"}),
        ],
    )
    tools = [f"orders/{n}" for n in ("hang", "huge", "malformed", "malformed_result")]
    tools += ["orders/explode", "orders/lookup_order"]
    admin, agent = await _setup(client, runtime, caller, _http(mcp_server[0]), tools)
    r = await client.post(
        "/api/chat/agent", json={"message": "go", "agent_id": agent["id"]}, headers=admin.headers
    )
    assert r.status_code == 200, r.text  # the turn answered and committed
    seen = {p.tool_name: p for p in caller.seen}
    limit = settings.mcp_call_timeout_seconds
    assert seen["orders__hang"].outcome == "failed"
    assert f"did not answer within {limit:g} s" in str(
        seen["orders__hang"].content
    ) or f"no answer within {limit:g} s" in str(seen["orders__hang"].content)
    huge = str(seen["orders__huge"].content)
    assert seen["orders__huge"].outcome == "success"
    assert len(huge) < settings.mcp_result_max_chars + 200
    assert huge.endswith(
        f"[truncated: the result was {5 * 1024 * 1024} characters; only the first "
        f"{settings.mcp_result_max_chars} are shown]"
    )
    for name in ("orders__malformed", "orders__malformed_result"):
        assert seen[name].outcome == "failed"
        assert "the MCP server 'orders' failed" in str(seen[name].content)
    assert seen["orders__explode"].outcome == "failed"
    assert "boom from the server" in str(seen["orders__explode"].content)
    assert seen["orders__lookup_order"].content == "order C-1: shipped"
    stored = r.json()["agent_message"]["metadata"]["tool_calls"]
    assert [c["name"] for c in stored] == [name for name, _ in caller.calls]
    assert stored[1]["truncated"] is True
    assert len(stored[1]["result"]) <= settings.tool_result_max_chars + 1  # and an ellipsis
    assert "boom from the server" in stored[4]["result"]


async def test_tool_calls_per_turn_are_capped(
    settings: Settings, mcp_server: tuple[str, int]
) -> None:
    calls = [("orders__lookup_order", {"order_id": str(i)}) for i in range(3)]
    caller = Caller("openai-chat:mcp-many", calls)
    async with app_client(settings, mcp_max_calls_per_turn=2) as (client, runtime):
        admin, agent = await _setup(
            client, runtime, caller, _http(mcp_server[0]), ["orders/lookup_order"]
        )
        r = await client.post(
            "/api/chat/agent",
            json={"message": "go", "agent_id": agent["id"]},
            headers=admin.headers,
        )
        assert r.status_code == 200, r.text
    assert [p.outcome for p in caller.seen] == ["success", "success", "failed"]
    assert "2 MCP tool calls, the limit per turn" in str(caller.seen[2].content)


async def test_a_server_that_goes_down_fails_the_call_and_keeps_its_tools(
    settings: Settings, mcp_server: tuple[str, int]
) -> None:
    dead = free_port()
    caller = Caller("openai-chat:mcp-down", [("orders__lookup_order", {"order_id": "D-4"})])
    hosts = [f"127.0.0.1:{mcp_server[1]}", f"127.0.0.1:{dead}"]
    async with app_client(settings, mcp_allowed_hosts=hosts) as (client, runtime):
        admin, agent = await _setup(
            client, runtime, caller, _http(mcp_server[0]), ["orders/lookup_order"]
        )
        (server,) = (await client.get("/api/admin/mcp-servers", headers=admin.headers)).json()[
            "items"
        ]
        r = await client.patch(
            f"/api/admin/mcp-servers/{server['id']}",
            json={"url": f"http://127.0.0.1:{dead}/mcp"},
            headers=admin.headers,
        )
        assert r.json()["status"] == "unavailable" and r.json()["tools"] == server["tools"]
        r = await client.post(
            "/api/chat/agent",
            json={"message": "D-4?", "agent_id": agent["id"]},
            headers=admin.headers,
        )
        assert r.status_code == 200, r.text
    (seen,) = caller.seen
    assert seen.outcome == "failed" and "the MCP server 'orders' failed" in str(seen.content)


async def test_secrets_are_never_in_responses_or_logs(
    client: httpx.AsyncClient,
    runtime: Runtime,
    mcp_server: tuple[str, int],
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    caller = Caller(
        "openai-chat:mcp-secret",
        [("orders__key_fingerprint", {}), ("orders__explode", {})],
    )
    admin, agent = await _setup(
        client,
        runtime,
        caller,
        _http(mcp_server[0], headers={"X-Api-Key": SECRET, "Authorization": f"Bearer {SECRET}"}),
        ["orders/key_fingerprint", "orders/explode"],
    )
    texts: list[str] = []
    r = await client.post(
        "/api/chat/agent", json={"message": "go", "agent_id": agent["id"]}, headers=admin.headers
    )
    texts.append(r.text)
    for path in ("/api/admin/mcp-servers", "/api/mcp-servers", "/api/tools"):
        texts.append((await client.get(path, headers=admin.headers)).text)
    server_id = json.loads(texts[1])["items"][0]["id"]
    r = await client.patch(
        f"/api/admin/mcp-servers/{server_id}",
        json={"headers": {"X-Api-Key": SECRET + "-2"}},
        headers=admin.headers,
    )
    texts.append(r.text)
    assert all(r.status_code < 300 for r in [r]) and caplog.records  # something was logged
    captured = capfd.readouterr()
    for text in (*texts, caplog.text, captured.out, captured.err):
        assert SECRET not in text


def _stdio(name: str = "local") -> dict[str, Any]:
    return {"name": name, "transport": "stdio", "command": STDIO_COMMAND}


async def test_a_misbehaving_stdio_server_fails_only_that_call(
    settings: Settings, mcp_server: tuple[str, int]
) -> None:
    order = [
        ("huge", {}),
        ("malformed_result", {}),
        ("explode", {}),
        ("hang", {}),
        ("lookup_order", {"order_id": "C-1"}),  # after a hang
        ("malformed", {}),
        ("malformed_bytes", {}),
        ("lookup_order", {"order_id": "C-2"}),  # after bytes that are not UTF-8
        ("die", {}),
        ("lookup_order", {"order_id": "C-3"}),  # after the process died
    ]
    calls = [(f"local__{name}", args) for name, args in order]
    # two turns (a run makes at most 10 model requests), the second on the same child
    first = Caller("openai-chat:mcp-stdio-hostile", calls[:5])
    second = Caller("openai-chat:mcp-stdio-hostile-2", calls[5:])
    tools = sorted({f"local/{name}" for name, _ in order})
    # a limit that a fresh child's start fits in on a loaded machine (a timed-out call
    # restarts the child)
    limit = 5.0
    async with app_client(settings, mcp_call_timeout_seconds=limit) as (client, runtime):
        admin, agent = await _setup(client, runtime, first, _stdio(), tools)
        runtime.models.override(second.model.model_name, second.model)
        body = {"name": "Clerk 2", "model": second.model.model_name, "tools": tools}
        r = await client.post("/api/agents", json=body, headers=admin.headers)
        assert r.status_code == 201, r.text
        replies = []
        for agent_id in (agent["id"], r.json()["id"]):
            r = await client.post(
                "/api/chat/agent",
                json={"message": "go", "agent_id": agent_id},
                headers=admin.headers,
                timeout=120,
            )
            assert r.status_code == 200, r.text  # the turn answered and committed
            replies.append(r.json())
    seen = first.seen + second.seen
    assert [p.tool_name for p in seen] == [name for name, _ in calls]
    (
        huge,
        wrong_shape,
        explode,
        hang,
        after_hang,
        malformed,
        raw_bytes,
        after_bytes,
        die,
        after_die,
    ) = seen
    assert huge.outcome == "success", huge.content
    assert str(huge.content).endswith(
        f"[truncated: the result was {5 * 1024 * 1024} characters; only the first "
        f"{settings.mcp_result_max_chars} are shown]"
    )
    # a well-formed answer of the wrong shape, and a tool that raises, fail the call at once
    assert wrong_shape.outcome == "failed", wrong_shape
    assert "the MCP server 'local' failed" in str(wrong_shape.content), wrong_shape.content
    assert explode.outcome == "failed" and "boom from the server" in str(explode.content)
    # a hang, and a broken line (no request id the client can read), fail at the time limit
    for broken in (hang, malformed, raw_bytes):
        assert broken.outcome == "failed", broken
        assert str(broken.content) == f"the MCP server 'local' did not answer within {limit:g} s"
    # ... and harm nothing else: the next call answers (bytes that are not UTF-8 leave the MCP
    # client deaf to that child for good, so a timed-out call restarts the child)
    for after, order_id in ((after_hang, "C-1"), (after_bytes, "C-2"), (after_die, "C-3")):
        assert after.content == f"order {order_id}: shipped", after.content
    assert die.outcome == "failed" and "the MCP server 'local' failed" in str(die.content)
    stored = [c for reply in replies for c in reply["agent_message"]["metadata"]["tool_calls"]]
    assert [c["name"] for c in stored] == [name for name, _ in calls]
    assert stored[0]["truncated"] is True


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_a_hanging_stdio_call_leaves_the_server_answering(settings: Settings) -> None:
    # a 1 s limit: the hang (and the 1 s grace past it) still spans dozens of probes below
    settings = settings.model_copy(update={"mcp_call_timeout_seconds": 1.0})
    caller = Caller("openai-chat:mcp-stdio-hang", [("local__hang", {})])
    async with (
        serving(settings) as (base, app),
        httpx.AsyncClient(base_url=base, timeout=60) as c,  # registering starts the child
    ):
        runtime: Runtime = app.state.runtime
        tools = ["local/hang"]
        admin, agent = await _setup(c, runtime, caller, _stdio(), tools)
        probes: list[float] = []
        done = asyncio.Event()

        async def probe_liveness() -> None:
            async with httpx.AsyncClient(base_url=base) as prober:
                while not done.is_set():
                    started = time.perf_counter()
                    r = await prober.get("/health/live", timeout=5)
                    assert r.status_code == 200
                    probes.append(time.perf_counter() - started)
                    await asyncio.sleep(0.05)

        prober = asyncio.create_task(probe_liveness())
        try:
            started = time.perf_counter()
            r = await c.post(
                "/api/chat/agent",
                json={"message": "go", "agent_id": agent["id"]},
                headers=admin.headers,
                timeout=60,
            )
            took = time.perf_counter() - started
        finally:
            done.set()
            await prober
        assert r.status_code == 200, r.text
    (hang,) = caller.seen
    assert hang.outcome == "failed" and "did not answer within" in str(hang.content)
    limit = settings.mcp_call_timeout_seconds
    assert limit <= took < limit + 10, took  # the call waited its limit, not forever
    # /health/live answered quickly all the while: the hang waits on the loop, never blocks it
    assert len(probes) >= limit / 0.2, probes
    slow_in_a_row = [a > 0.1 and b > 0.1 for a, b in itertools.pairwise(probes)]
    assert not any(slow_in_a_row), probes
    assert max(probes) < 1.0, probes
