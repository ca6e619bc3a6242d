"""The OpenAI-compatible door, driven by the official ``openai`` SDK against the running app
(uvicorn on a free port, real stores)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import openai
import pytest
from openai import AsyncOpenAI
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart
from pydantic_ai.models.function import AgentInfo, FunctionModel

from employeevirtual.runtime import Runtime
from support.api import create_agent, register_and_login
from support.sse import serve
from support.stores import mongo_messages, sql_messages

MODEL = "openai-chat:door-echo"


def _echo(seen: list[list[ModelMessage]]) -> FunctionModel:
    """Answers 'echo: <last prompt> (<n> messages)' and records what it was given."""

    def answer(messages: list[ModelMessage]) -> str:
        seen.append(list(messages))
        prompt = messages[-1].parts[-1].content  # type: ignore[union-attr]
        return f"echo: {prompt} ({len(messages)} messages)"

    async def reply(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        return ModelResponse(parts=[TextPart(answer(messages))])

    async def stream(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[str]:
        for word in answer(messages).split(" "):
            yield word + " "

    return FunctionModel(reply, stream_function=stream, model_name=MODEL)


@pytest.fixture
async def door(
    app_and_runtime: tuple[Any, Runtime],
) -> AsyncIterator[tuple[str, httpx.AsyncClient]]:
    async with serve(app_and_runtime[0]) as url, httpx.AsyncClient(base_url=url) as http:
        yield url, http


async def _client(
    http: httpx.AsyncClient, url: str, runtime: Runtime, seen: list[list[ModelMessage]]
) -> tuple[AsyncOpenAI, dict[str, Any], dict[str, str]]:
    runtime.models.override(MODEL, _echo(seen))
    headers = await register_and_login(http)
    agent = await create_agent(http, headers, name="Echo", model=MODEL)
    key = (await http.post("/api/api-keys", json={"name": "sdk"}, headers=headers)).json()
    return AsyncOpenAI(base_url=f"{url}/v1", api_key=key["key"], max_retries=0), agent, headers


async def test_models_completion_and_continuing_by_header_and_by_history(
    door: tuple[str, httpx.AsyncClient], runtime: Runtime
) -> None:
    url, http = door
    seen: list[list[ModelMessage]] = []
    client, agent, headers = await _client(http, url, runtime, seen)
    other = await create_agent(http, headers, name="Other", model=MODEL)
    models = await client.models.list()
    assert {m.id for m in models.data} == {agent["id"], other["id"]}

    raw = await client.chat.completions.with_raw_response.create(
        model=agent["id"], messages=[{"role": "user", "content": "hello"}]
    )
    first = raw.parse()
    cid = raw.headers["X-Conversation-Id"]
    assert first.choices[0].message.role == "assistant"
    assert first.choices[0].message.content == "echo: hello (1 messages)"
    assert first.choices[0].finish_reason == "stop"
    assert first.usage is not None and first.usage.total_tokens > 0
    assert len(await sql_messages(runtime, cid)) == 2

    # by header
    raw = await client.chat.completions.with_raw_response.create(
        model=agent["id"],
        messages=[{"role": "user", "content": "by header"}],
        extra_headers={"X-Conversation-Id": cid},
    )
    assert raw.headers["X-Conversation-Id"] == cid
    assert raw.parse().choices[0].message.content == "echo: by header (3 messages)"
    # by metadata
    raw = await client.chat.completions.with_raw_response.create(
        model=agent["id"],
        messages=[{"role": "user", "content": "by metadata"}],
        metadata={"conversation_id": cid},
    )
    assert raw.headers["X-Conversation-Id"] == cid
    stored = (await http.get(f"/api/conversations/{cid}/messages", headers=headers)).json()
    dialogue = [
        {"role": "user" if m["message_type"] == "user" else "assistant", "content": m["content"]}
        for m in stored["messages"]
    ]
    assert len(dialogue) == 6
    # by resending the whole history, as Open WebUI and LibreChat do
    raw = await client.chat.completions.with_raw_response.create(
        model=agent["id"], messages=[*dialogue, {"role": "user", "content": "resent"}]
    )
    assert raw.headers["X-Conversation-Id"] == cid
    assert raw.parse().choices[0].message.content == "echo: resent (7 messages)"
    assert len(await sql_messages(runtime, cid)) == 8
    # a history that matches no stored conversation starts a new one, with it as context
    raw = await client.chat.completions.with_raw_response.create(
        model=agent["id"],
        messages=[
            {"role": "system", "content": "ignored: the agent has its instructions"},
            {"role": "user", "content": "from elsewhere"},
            {"role": "assistant", "content": "an answer we never gave"},
            {"role": "user", "content": "new"},
        ],
    )
    new_cid = raw.headers["X-Conversation-Id"]
    assert new_cid != cid
    assert raw.parse().choices[0].message.content == "echo: new (3 messages)"
    assert len(await sql_messages(runtime, new_cid)) == 2  # the context is not stored
    kinds = [type(m).__name__ for m in seen[-1]]
    assert kinds == ["ModelRequest", "ModelResponse", "ModelRequest"]
    # another user's conversation id is not found; a foreign agent neither
    stranger = await register_and_login(http)
    key = (await http.post("/api/api-keys", json={"name": "s"}, headers=stranger)).json()
    theirs = AsyncOpenAI(base_url=f"{url}/v1", api_key=key["key"], max_retries=0)
    with pytest.raises(openai.NotFoundError):
        await theirs.chat.completions.create(
            model=agent["id"], messages=[{"role": "user", "content": "x"}]
        )
    assert (await theirs.models.list()).data == []


async def test_streaming_with_usage_and_the_turn_is_stored(
    door: tuple[str, httpx.AsyncClient], runtime: Runtime
) -> None:
    url, http = door
    seen: list[list[ModelMessage]] = []
    client, agent, _headers = await _client(http, url, runtime, seen)
    async with client.chat.completions.with_streaming_response.create(
        model=agent["id"],
        messages=[{"role": "user", "content": "stream me"}],
        stream=True,
        stream_options={"include_usage": True},
    ) as response:
        cid = response.headers["X-Conversation-Id"]
        chunks = [c async for c in await response.parse()]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "echo: stream me (1 messages) "
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[0].choices[0].delta.role == "assistant"
    usage = [c.usage for c in chunks if not c.choices]
    assert len(usage) == 1 and usage[0] is not None and usage[0].total_tokens > 0
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    found = await sql_messages(runtime, cid)
    assert len(found) == 2
    for _ in range(50):
        if len(await mongo_messages(runtime, cid)) == 2:
            break
        await asyncio.sleep(0.05)
    assert len(await mongo_messages(runtime, cid)) == 2
    # without include_usage there is no usage chunk; the simple iterator works too
    stream = await client.chat.completions.create(
        model=agent["id"],
        messages=[{"role": "user", "content": "again"}],
        stream=True,
        extra_headers={"X-Conversation-Id": cid},
    )
    chunks = [c async for c in stream]
    assert all(c.choices for c in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks).startswith("echo: again")


async def test_errors_in_openai_shape(
    door: tuple[str, httpx.AsyncClient], runtime: Runtime
) -> None:
    url, http = door
    client, agent, _headers = await _client(http, url, runtime, [])
    with pytest.raises(openai.NotFoundError) as missing:
        await client.chat.completions.create(
            model=str(uuid.uuid4()), messages=[{"role": "user", "content": "x"}]
        )
    assert missing.value.code == "model_not_found" and missing.value.param == "model"
    with pytest.raises(openai.NotFoundError):
        await client.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "x"}]
        )
    with pytest.raises(openai.BadRequestError) as bad:
        await client.chat.completions.create(
            model=agent["id"], messages=[{"role": "assistant", "content": "no user"}]
        )
    assert bad.value.type == "invalid_request_error"
    with pytest.raises(openai.BadRequestError):
        await client.chat.completions.create(model=agent["id"], messages=[])
    with pytest.raises(openai.BadRequestError):
        await client.chat.completions.create(
            model=agent["id"],
            messages=[{"role": "user", "content": "x"}],
            extra_headers={"X-Conversation-Id": "not-a-uuid"},
        )
    wrong_key = AsyncOpenAI(base_url=f"{url}/v1", api_key="ev_live_nope", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as denied:
        await wrong_key.models.list()
    assert denied.value.status_code == 401 and denied.value.code == "invalid_api_key"
    limited = runtime.settings.rate_limit_chat
    runtime.settings.rate_limit_chat = 1
    try:
        with contextlib.suppress(openai.RateLimitError):  # this window's one request
            await client.chat.completions.create(
                model=agent["id"], messages=[{"role": "user", "content": "x"}]
            )
        with pytest.raises(openai.RateLimitError) as limited_error:
            await client.chat.completions.create(
                model=agent["id"], messages=[{"role": "user", "content": "x"}]
            )
        assert limited_error.value.code == "rate_limit_exceeded"
    finally:
        runtime.settings.rate_limit_chat = limited


async def test_idempotency_key_replays_the_completion(
    door: tuple[str, httpx.AsyncClient], runtime: Runtime
) -> None:
    url, http = door
    client, agent, _headers = await _client(http, url, runtime, [])
    key = {"Idempotency-Key": f"k-{uuid.uuid4()}"}
    messages: Any = [{"role": "user", "content": "once"}]
    first = await client.chat.completions.with_raw_response.create(
        model=agent["id"], messages=messages, extra_headers=key
    )
    again = await client.chat.completions.with_raw_response.create(
        model=agent["id"], messages=messages, extra_headers=key
    )
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.parse().choices[0].message.content == first.parse().choices[0].message.content
    assert again.headers["X-Conversation-Id"] == first.headers["X-Conversation-Id"]
    assert len(await sql_messages(runtime, first.headers["X-Conversation-Id"])) == 2
    stream = await client.chat.completions.create(
        model=agent["id"], messages=messages, stream=True, extra_headers=key
    )
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == first.parse().choices[0].message.content
    assert len(await sql_messages(runtime, first.headers["X-Conversation-Id"])) == 2
