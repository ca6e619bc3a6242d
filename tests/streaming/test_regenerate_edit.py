"""Regenerate and edit: append-only, replaced messages kept and marked, left out of the model's
context, in both stores; streamed when asked."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, UserPromptPart
from pydantic_ai.models.function import AgentInfo, FunctionModel

from employeevirtual.runtime import Runtime
from support.access import audit_rows
from support.api import create_agent, register_and_login
from support.live import stored_messages
from support.sse import read_all, serve
from support.stores import mongo_messages

MODEL = "openai-chat:counting"


def _texts(messages: list[ModelMessage]) -> list[str]:
    out = []
    for m in messages:
        for p in m.parts:
            if isinstance(p, UserPromptPart | TextPart):
                out.append(str(p.content))
    return out


def _counting(seen: list[list[str]]) -> FunctionModel:
    def answer(messages: list[ModelMessage]) -> str:
        seen.append(_texts(messages))
        return f"answer {len(seen)}"

    async def reply(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        return ModelResponse(parts=[TextPart(answer(messages))])

    async def stream(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[str]:
        text = answer(messages)
        for word in text.split(" "):
            yield word if word == text.split(" ")[-1] else word + " "

    return FunctionModel(reply, stream_function=stream, model_name=MODEL)


@pytest.fixture
async def http(app_and_runtime: tuple[Any, Runtime]) -> AsyncIterator[httpx.AsyncClient]:
    async with serve(app_and_runtime[0]) as url, httpx.AsyncClient(base_url=url) as c:
        yield c


async def _mongo(runtime: Runtime, cid: str, count: int) -> dict[str, int]:
    for _ in range(100):
        found = await mongo_messages(runtime, cid)
        if len(found) >= count:
            return found
        await asyncio.sleep(0.05)
    return await mongo_messages(runtime, cid)


async def test_regenerate_and_edit(http: httpx.AsyncClient, runtime: Runtime) -> None:
    seen: list[list[str]] = []
    runtime.models.override(MODEL, _counting(seen))
    headers = await register_and_login(http)
    agent = await create_agent(http, headers, model=MODEL)
    r = await http.post(
        "/api/chat/agent", json={"message": "q1", "agent_id": agent["id"]}, headers=headers
    )
    cid = r.json()["conversation_id"]
    r = await http.post(
        "/api/chat/agent", json={"message": "q2", "conversation_id": cid}, headers=headers
    )
    q2, a2 = r.json()["user_message"], r.json()["agent_message"]
    assert a2["content"] == "answer 2"

    # regenerate: the agent answers q2 again, without its first answer in the context
    r = await http.post(f"/api/conversations/{cid}/regenerate", headers=headers)
    assert r.status_code == 200, r.text
    again = r.json()
    assert again["user_message"]["id"] == q2["id"]
    assert again["agent_message"]["content"] == "answer 3"
    assert again["agent_message"]["metadata"]["supersedes"] == [a2["id"]]
    assert seen[-1] == ["q1", "answer 1", "q2"]

    history = (await http.get(f"/api/conversations/{cid}/messages", headers=headers)).json()
    assert [m["content"] for m in history["messages"]] == ["q1", "answer 1", "q2", "answer 3"]
    full = await http.get(
        f"/api/conversations/{cid}/messages",
        params={"include_superseded": "true"},
        headers=headers,
    )
    marked = [
        (m["content"], m["metadata"].get("superseded", False)) for m in full.json()["messages"]
    ]
    assert marked == [
        ("q1", False),
        ("answer 1", False),
        ("q2", False),
        ("answer 2", True),
        ("answer 3", False),
    ]
    # a page that ends on the replaced answer still knows it was replaced (look-ahead)
    page = await http.get(
        f"/api/conversations/{cid}/messages", params={"limit": 2, "before": 5}, headers=headers
    )
    assert [m["content"] for m in page.json()["messages"]] == ["q2"]

    # the next turn's context leaves the replaced answer out (SQL path and cached path)
    r = await http.post(
        "/api/chat/agent", json={"message": "q3", "conversation_id": cid}, headers=headers
    )
    q3 = r.json()["user_message"]
    assert seen[-1] == ["q1", "answer 1", "q2", "answer 3", "q3"]
    runtime.chat.context.forget(uuid.UUID(cid))

    # edit the last user message, streamed
    r = await http.patch(
        f"/api/conversations/{cid}/messages/{q3['id']}",
        json={"content": "q3, better"},
        headers={**headers, "Accept": "text/event-stream"},
    )
    assert r.status_code == 200, r.text
    events = await read_all(r)  # the body is complete: read_all parses it
    assert events[0].event == "turn" and events[-1].event == "done"
    done = events[-1].data
    edited = done["user_message"]
    assert edited["content"] == "q3, better" and edited["is_edited"] is True
    assert edited["edited_at"] is not None and edited["id"] != q3["id"]
    assert done["agent_message"]["content"] == "answer 5"
    assert seen[-1] == ["q1", "answer 1", "q2", "answer 3", "q3, better"]
    # both stores: the edited message and its flags; the original stays (superseded)
    rows = await stored_messages(runtime, cid)
    assert len(rows) == 9
    by_id = {str(m["id"]): m for m in rows}
    assert by_id[edited["id"]]["is_edited"] is True and by_id[edited["id"]]["edited_at"]
    assert by_id[q3["id"]]["is_edited"] is False and by_id[q3["id"]]["content"] == "q3"
    assert len(await _mongo(runtime, cid, 9)) == 9
    doc = await runtime.documents.messages.find_one({"_id": edited["id"]})
    assert doc is not None and doc["is_edited"] is True and doc["edited_at"] is not None
    audit = await audit_rows(runtime, "message.edited")
    assert any(row["details"]["original_content"] == "q3" for row in audit)
    history = (await http.get(f"/api/conversations/{cid}/messages", headers=headers)).json()
    assert [m["content"] for m in history["messages"]] == [
        "q1",
        "answer 1",
        "q2",
        "answer 3",
        "q3, better",
        "answer 5",
    ]
    assert history["messages"][4]["is_edited"] is True

    # only the last user message can be edited; unknown or foreign ids are 404
    r = await http.patch(
        f"/api/conversations/{cid}/messages/{q2['id']}", json={"content": "x"}, headers=headers
    )
    assert r.status_code == 409
    r = await http.patch(
        f"/api/conversations/{cid}/messages/{uuid.uuid4()}",
        json={"content": "x"},
        headers=headers,
    )
    assert r.status_code == 404
    r = await http.patch(
        f"/api/conversations/{cid}/messages/{edited['id']}",
        json={"content": " "},
        headers=headers,
    )
    assert r.status_code == 422
    stranger = await register_and_login(http)
    r = await http.post(f"/api/conversations/{cid}/regenerate", headers=stranger)
    assert r.status_code == 404
    r = await http.patch(
        f"/api/conversations/{cid}/messages/{edited['id']}",
        json={"content": "x"},
        headers=stranger,
    )
    assert r.status_code == 404
    assert len(await stored_messages(runtime, cid)) == 9


async def test_regenerate_and_edit_honour_an_idempotency_key(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    """The chat route's key rules on regenerate and edit: a retry after the end replays the
    stored answer (JSON, or SSE when asked) without running the agent again; a retry of a
    running streamed one follows its events; the key reused for another request is 422."""
    seen: list[list[str]] = []
    gate = asyncio.Event()
    counting = _counting(seen)

    async def stream(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[str]:
        await gate.wait()  # the streamed regeneration waits here until the retry attached
        async for word in counting.stream_function(messages, info):  # type: ignore[misc]
            yield word

    runtime.models.override(
        MODEL, FunctionModel(counting.function, stream_function=stream, model_name=MODEL)
    )
    headers = await register_and_login(http)
    agent = await create_agent(http, headers, model=MODEL)
    r = await http.post(
        "/api/chat/agent", json={"message": "q1", "agent_id": agent["id"]}, headers=headers
    )
    cid = r.json()["conversation_id"]

    keyed = {**headers, "Idempotency-Key": "regen-1"}
    first = await http.post(f"/api/conversations/{cid}/regenerate", headers=keyed)
    assert first.status_code == 200, first.text
    again = await http.post(f"/api/conversations/{cid}/regenerate", headers=keyed)
    assert again.status_code == 200 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json() and len(seen) == 2  # the agent ran once for both
    sse = await http.post(
        f"/api/conversations/{cid}/regenerate", headers={**keyed, "Accept": "text/event-stream"}
    )
    replayed = await read_all(sse)
    assert [e.event for e in replayed] == ["turn", "done"]
    assert replayed[-1].data == first.json() and len(seen) == 2
    # the same key on the edit route is another request
    q1 = first.json()["user_message"]
    r = await http.patch(
        f"/api/conversations/{cid}/messages/{q1['id']}", json={"content": "x"}, headers=keyed
    )
    assert r.status_code == 422 and "different request" in r.json()["detail"]

    edit_key = {**headers, "Idempotency-Key": "edit-1"}
    url = f"/api/conversations/{cid}/messages/{q1['id']}"
    edited = await http.patch(url, json={"content": "q1, better"}, headers=edit_key)
    assert edited.status_code == 200, edited.text
    retry = await http.patch(url, json={"content": "q1, better"}, headers=edit_key)
    assert retry.json() == edited.json() and retry.headers["Idempotent-Replayed"] == "true"
    r = await http.patch(url, json={"content": "q1, other"}, headers=edit_key)
    assert r.status_code == 422
    assert len(seen) == 3
    assert len(await stored_messages(runtime, cid)) == 5  # q1 a1 a2 q1' a3: nothing twice

    # a streamed regeneration, retried with its key while it runs: the retry follows it
    gate.clear()
    live_key = {**headers, "Idempotency-Key": "regen-live", "Accept": "text/event-stream"}
    regen = f"/api/conversations/{cid}/regenerate"
    async with http.stream("POST", regen, headers=live_key) as r1:
        assert r1.status_code == 200
        turn_id = r1.headers["X-Turn-Id"]
        async with http.stream("POST", regen, headers=live_key) as r2:
            assert r2.headers["X-Turn-Id"] == turn_id
            assert r2.headers["Idempotent-Replayed"] == "true"
            gate.set()
            followed = await read_all(r2)
        original = await read_all(r1)
    assert followed[-1].event == original[-1].event == "done"
    assert followed[-1].data == original[-1].data
    assert len(seen) == 4 and len(await stored_messages(runtime, cid)) == 6
