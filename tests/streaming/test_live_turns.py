"""Streamed turns over a real HTTP server (uvicorn) on real stores: events, disconnect and
resume, cancel, failure mid-stream, Idempotency-Key re-attach, tool calls."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolReturnPart
from pydantic_ai.models.function import AgentInfo, DeltaToolCall, DeltaToolCalls, FunctionModel

from employeevirtual.main import create_app
from employeevirtual.runtime import Runtime
from employeevirtual.settings import Settings
from support.api import create_agent, register_and_login
from support.live import WORDS, paced, stored_messages
from support.sse import Event, events, read_all, serve
from support.stores import mongo_messages, sql_messages

SSE = {"Accept": "text/event-stream"}


@pytest.fixture
async def base_url(app_and_runtime: tuple[Any, Runtime]) -> AsyncIterator[str]:
    async with serve(app_and_runtime[0]) as url:
        yield url


@pytest.fixture
async def http(base_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as c:
        yield c


async def _setup(
    http: httpx.AsyncClient, runtime: Runtime, model: FunctionModel | None = None, **agent: Any
) -> tuple[dict[str, str], dict[str, Any]]:
    headers = await register_and_login(http)
    if model is not None:
        runtime.models.override(model.model_name, model)
        agent.setdefault("model", model.model_name)
    return headers, await create_agent(http, headers, **agent)


async def _mongo_caught_up(runtime: Runtime, conversation_id: str, count: int) -> dict[str, int]:
    for _ in range(100):
        found = await mongo_messages(runtime, conversation_id)
        if len(found) >= count:
            return found
        await asyncio.sleep(0.05)
    return await mongo_messages(runtime, conversation_id)


async def test_a_streamed_turn_sends_turn_deltas_and_done(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    headers, agent = await _setup(http, runtime, paced("openai-chat:paced-a", delay=0.001))
    async with http.stream(
        "POST",
        "/api/chat/agent",
        json={"message": "hi", "agent_id": agent["id"]},
        headers={**headers, **SSE},
    ) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        got = await read_all(r)
    kinds = [e.event for e in got]
    assert kinds[0] == "turn" and kinds[-1] == "done"
    assert set(kinds[1:-1]) == {"delta"}
    turn, done = got[0].data, got[-1].data
    assert turn["user_message"]["seq"] == 1
    assert turn["conversation_id"] == done["conversation_id"]
    text = "".join(e.data["delta"] for e in got if e.event == "delta")
    assert text == "".join(WORDS) == done["agent_message"]["content"]
    assert done["user_message"]["id"] == turn["user_message"]["id"]
    assert set(done["usage"]) == {"input_tokens", "output_tokens", "total_tokens", "cost"}
    ids = [int(e.id or 0) for e in got]
    assert ids == list(range(1, len(got) + 1))
    # the same turn, committed and written like a non-streamed one
    cid = done["conversation_id"]
    assert len(await sql_messages(runtime, cid)) == 2
    assert len(await _mongo_caught_up(runtime, cid, 2)) == 2
    r2 = await http.get(f"/api/conversations/{cid}", headers=headers)
    assert r2.json()["message_count"] == 2
    # without the header: the JSON answer, unchanged
    r3 = await http.post(
        "/api/chat/agent", json={"message": "again", "conversation_id": cid}, headers=headers
    )
    assert r3.status_code == 200 and r3.json()["agent_message"]["seq"] == 4


async def test_disconnect_then_resume_gives_the_rest_once(
    http: httpx.AsyncClient, runtime: Runtime, base_url: str
) -> None:
    headers, agent = await _setup(http, runtime, paced("openai-chat:paced-b", delay=0.02))
    seen: list[Event] = []
    async with http.stream(
        "POST",
        "/api/chat/agent",
        json={"message": "hi", "agent_id": agent["id"]},
        headers={**headers, **SSE},
    ) as r:
        turn_id = r.headers["X-Turn-Id"]
        async for e in events(r):
            if e is not None:
                seen.append(e)
            if sum(1 for x in seen if x.event == "delta") == 2:
                break  # the client walks away after two deltas
    assert [e.event for e in seen] == ["turn", "delta", "delta"]
    # resume from the last id on a fresh connection
    async with (
        httpx.AsyncClient(base_url=base_url, timeout=30) as other,
        other.stream(
            "GET",
            f"/api/chat/turns/{turn_id}/events",
            headers={**headers, "Last-Event-ID": seen[-1].id or ""},
        ) as r,
    ):
        assert r.status_code == 200
        rest = await read_all(r)
    assert rest[-1].event == "done"
    ids = [e.id for e in seen + rest]
    assert len(ids) == len(set(ids))
    text = "".join(e.data["delta"] for e in seen + rest if e.event == "delta")
    stored = await stored_messages(runtime, seen[0].data["conversation_id"])
    assert [m["message_type"] for m in stored] == ["user", "agent"]  # stored once
    assert text == stored[1]["content"] == "".join(WORDS)
    cid = seen[0].data["conversation_id"]
    assert len(await _mongo_caught_up(runtime, cid, 2)) == 2
    # after the end, a resume from the start replays everything, still for the owner only
    async with http.stream("GET", f"/api/chat/turns/{turn_id}/events", headers=headers) as r:
        replay = await read_all(r)
    assert [e.id for e in replay] == [e.id for e in seen + rest]
    stranger = await register_and_login(http)
    r = await http.get(f"/api/chat/turns/{turn_id}/events", headers=stranger)
    assert r.status_code == 404
    r = await http.get(f"/api/chat/turns/{uuid.uuid4()}/events", headers=headers)
    assert r.status_code == 404


async def test_a_client_that_never_comes_back_still_gets_its_turn_committed(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    headers, agent = await _setup(http, runtime, paced("openai-chat:paced-c", delay=0.01))
    async with http.stream(
        "POST",
        "/api/chat/agent",
        json={"message": "hi", "agent_id": agent["id"]},
        headers={**headers, **SSE},
    ) as r:
        async for e in events(r):
            if e is not None and e.event == "turn":
                cid = e.data["conversation_id"]
                break
    for _ in range(200):
        if len(await sql_messages(runtime, cid)) == 2:
            break
        await asyncio.sleep(0.02)
    stored = await stored_messages(runtime, cid)
    assert [m["content"] for m in stored] == ["hi", "".join(WORDS)]
    assert len(await _mongo_caught_up(runtime, cid, 2)) == 2


async def test_cancel_mid_stream_commits_what_was_streamed_once(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    headers, agent = await _setup(http, runtime, paced("openai-chat:paced-d", delay=0.05))
    got: list[Event] = []
    async with http.stream(
        "POST",
        "/api/chat/agent",
        json={"message": "hi", "agent_id": agent["id"]},
        headers={**headers, **SSE},
    ) as r:
        turn_id = r.headers["X-Turn-Id"]
        async for e in events(r):
            if e is None:
                continue
            got.append(e)
            if sum(1 for x in got if x.event == "delta") == 3 and len(got) == 4:
                c = await http.post(f"/api/chat/turns/{turn_id}/cancel", headers=headers)
                assert c.status_code == 202, c.text
    assert got[-1].event == "done"
    done = got[-1].data
    streamed = "".join(e.data["delta"] for e in got if e.event == "delta")
    assert done["agent_message"]["metadata"]["cancelled"] is True
    assert done["agent_message"]["content"] == streamed
    assert 3 <= len(streamed.split()) < len(WORDS)
    cid = done["conversation_id"]
    stored = await stored_messages(runtime, cid)
    assert [m["message_type"] for m in stored] == ["user", "agent"]
    assert stored[1]["content"] == streamed
    assert stored[1]["message_metadata"]["cancelled"] is True
    mongo = await _mongo_caught_up(runtime, cid, 2)
    doc = await runtime.documents.messages.find_one({"_id": str(stored[1]["id"])})
    assert len(mongo) == 2 and doc is not None and doc["metadata"]["cancelled"] is True
    again = await http.post(f"/api/chat/turns/{turn_id}/cancel", headers=headers)
    assert again.status_code == 409
    stranger = await register_and_login(http)
    r = await http.post(f"/api/chat/turns/{turn_id}/cancel", headers=stranger)
    assert r.status_code == 404


async def test_agent_failure_mid_stream_is_an_error_event_and_recorded(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    async def reply(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        raise AssertionError("not used")

    async def stream(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[str]:
        yield "half "
        raise RuntimeError("provider went away")

    model = FunctionModel(reply, stream_function=stream, model_name="openai-chat:breaks")
    headers, agent = await _setup(http, runtime, model)
    async with http.stream(
        "POST",
        "/api/chat/agent",
        json={"message": "hi", "agent_id": agent["id"]},
        headers={**headers, **SSE},
    ) as r:
        got = await read_all(r)
    assert [e.event for e in got] == ["turn", "delta", "error"]
    error = got[-1].data
    assert error["status"] == 502 and error["kind"] == "internal"
    assert error["conversation_id"] == got[0].data["conversation_id"]
    stored = await stored_messages(runtime, error["conversation_id"])
    assert [m["message_type"] for m in stored] == ["user", "error"]
    assert stored[0]["content"] == "hi"


async def test_an_idempotent_retry_attaches_to_the_running_stream(
    http: httpx.AsyncClient, runtime: Runtime, base_url: str
) -> None:
    headers, agent = await _setup(http, runtime, paced("openai-chat:paced-e", delay=0.02))
    key = {"Idempotency-Key": f"k-{uuid.uuid4()}"}
    body = {"message": "hi", "agent_id": agent["id"]}
    first: list[Event] = []
    async with http.stream(
        "POST", "/api/chat/agent", json=body, headers={**headers, **SSE, **key}
    ) as r:
        async for e in events(r):
            if e is not None:
                first.append(e)
            if len(first) == 3:
                break
    async with (
        httpx.AsyncClient(base_url=base_url, timeout=30) as other,
        other.stream("POST", "/api/chat/agent", json=body, headers={**headers, **SSE, **key}) as r,
    ):
        assert r.headers.get("Idempotent-Replayed") == "true"
        retry = await read_all(r)
    assert retry[0].id == "1" and retry[0].data == first[0].data  # the same turn, from its start
    assert retry[-1].event == "done"
    cid = first[0].data["conversation_id"]
    assert len(await sql_messages(runtime, cid)) == 2  # ran once
    # after the end: the stored answer, as SSE when asked and as JSON otherwise
    async with http.stream(
        "POST", "/api/chat/agent", json=body, headers={**headers, **SSE, **key}
    ) as r:
        replay = await read_all(r)
    assert [e.event for e in replay] == ["turn", "done"]
    assert replay[-1].data == retry[-1].data
    r = await http.post("/api/chat/agent", json=body, headers={**headers, **key})
    assert r.status_code == 200 and r.json() == retry[-1].data
    assert len(await sql_messages(runtime, cid)) == 2


async def test_tool_calls_are_streamed_stored_and_replayed_to_the_model(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    seen: list[list[ModelMessage]] = []

    async def reply(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        seen.append(list(messages))
        return ModelResponse(parts=[TextPart("second answer")])

    async def stream(
        messages: list[ModelMessage], info: AgentInfo
    ) -> AsyncIterator[str | DeltaToolCalls]:
        last = messages[-1].parts[-1]
        if isinstance(last, ToolReturnPart):
            yield "The sum "
            yield "is done."
        else:
            yield {
                0: DeltaToolCall(
                    name="calculator", json_args='{"expression": "2+3"}', tool_call_id="c1"
                )
            }

    model = FunctionModel(reply, stream_function=stream, model_name="openai-chat:tooling")
    headers, agent = await _setup(http, runtime, model, tools=["calculator"])
    async with http.stream(
        "POST",
        "/api/chat/agent",
        json={"message": "add", "agent_id": agent["id"]},
        headers={**headers, **SSE},
    ) as r:
        got = await read_all(r)
    kinds = [e.event for e in got]
    assert kinds == ["turn", "tool_call", "tool_result", "delta", "delta", "done"]
    assert got[1].data == {"id": "c1", "name": "calculator", "args": {"expression": "2+3"}}
    assert got[2].data == {"id": "c1", "name": "calculator", "result": "5", "truncated": False}
    done = got[-1].data
    calls = done["agent_message"]["metadata"]["tool_calls"]
    assert calls == [
        {
            "id": "c1",
            "name": "calculator",
            "args": {"expression": "2+3"},
            "result": "5",
            "truncated": False,
        }
    ]
    cid = done["conversation_id"]
    stored = await stored_messages(runtime, cid)
    assert stored[1]["message_metadata"]["tool_calls"] == calls
    await _mongo_caught_up(runtime, cid, 2)
    doc = await runtime.documents.messages.find_one({"_id": str(stored[1]["id"])})
    assert doc is not None and doc["metadata"]["tool_calls"] == calls
    history = await http.get(f"/api/conversations/{cid}/messages", headers=headers)
    assert history.json()["messages"][1]["metadata"]["tool_calls"] == calls
    # the next turn (not streamed) gives the model the call and its result as history
    r2 = await http.post(
        "/api/chat/agent", json={"message": "and?", "conversation_id": cid}, headers=headers
    )
    assert r2.status_code == 200, r2.text
    parts = [p for m in seen[-1] for p in m.parts]
    kinds_seen = [type(p).__name__ for p in parts]
    assert kinds_seen == [
        "UserPromptPart",
        "ToolCallPart",
        "ToolReturnPart",
        "TextPart",
        "UserPromptPart",
    ]
    assert parts[2].content == "5"  # type: ignore[union-attr]
    assert parts[3].content == "The sum is done."  # type: ignore[union-attr]


async def test_the_offline_model_streams_and_calls_both_tools(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    headers = await register_and_login(http)
    agent = await create_agent(
        http, headers, model="offline", tools=["calculator", "current_datetime"]
    )
    async with http.stream(
        "POST",
        "/api/chat/agent",
        json={"message": "what is (2 + 3) * 4?", "agent_id": agent["id"]},
        headers={**headers, **SSE},
    ) as r:
        got = await read_all(r)
    kinds = [e.event for e in got]
    assert kinds[:3] == ["turn", "tool_call", "tool_result"] and kinds[-1] == "done"
    assert got[1].data["args"] == {"expression": "(2 + 3) * 4"}
    assert got[2].data["result"] == "20"
    deltas = [e.data["delta"] for e in got if e.event == "delta"]
    assert len(deltas) > 3  # word-sized chunks
    assert "".join(deltas) == got[-1].data["agent_message"]["content"]
    assert "20" in got[-1].data["agent_message"]["content"]
    cid = got[0].data["conversation_id"]
    async with http.stream(
        "POST",
        "/api/chat/agent",
        json={"message": "what time is it?", "conversation_id": cid},
        headers={**headers, **SSE},
    ) as r:
        got = await read_all(r)
    assert [e.event for e in got][1:3] == ["tool_call", "tool_result"]
    assert got[1].data["name"] == "current_datetime"
    assert got[2].data["result"][:2] == "20"  # an ISO timestamp
    # and without the tools it just talks
    plain = await create_agent(http, headers, model="offline")
    r2 = await http.post(
        "/api/chat/agent",
        json={"message": "what is 2+2?", "agent_id": plain["id"]},
        headers=headers,
    )
    assert "tool_calls" not in r2.json()["agent_message"]["metadata"]


async def test_shutdown_lets_turns_finish_then_commits_the_rest_as_cancelled(
    settings: Settings,
) -> None:
    """Invariant 9 at shutdown: a running turn gets the grace period, then is cancelled and its
    partial answer committed (never dropped)."""
    quick = settings.model_copy(update={"shutdown_grace_seconds": 0.3})
    app = create_app(quick)
    got: list[Event] = []
    async with app.router.lifespan_context(app):
        runtime: Runtime = app.state.runtime
        model = paced("openai-chat:paced-shutdown", delay=0.1)
        runtime.models.override(model.model_name, model)
        async with serve(app) as url, httpx.AsyncClient(base_url=url, timeout=30) as http:
            headers = await register_and_login(http)
            agent = await create_agent(http, headers, model=model.model_name)
            async with http.stream(
                "POST",
                "/api/chat/agent",
                json={"message": "hi", "agent_id": agent["id"]},
                headers={**headers, **SSE},
            ) as r:
                async for e in events(r):
                    if e is not None:
                        got.append(e)
                    if len(got) == 2:
                        break
        cid = got[0].data["conversation_id"]
    # the server is down; a new one on the same stores reads what was committed
    again = create_app(quick)
    async with again.router.lifespan_context(again):
        rows = await stored_messages(again.state.runtime, cid)
    assert [m["message_type"] for m in rows] == ["user", "agent"]
    assert rows[1]["message_metadata"]["cancelled"] is True
    assert 1 <= len(rows[1]["content"].split()) < len(WORDS)
