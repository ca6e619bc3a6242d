"""The fake OpenAI-compatible server drives Pydantic AI's real OpenAI Chat Completions code path."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from openai import AsyncOpenAI
from pydantic_ai import (
    Agent,
    ModelHTTPError,
    ModelRateLimitError,
    ModelServerError,
    ModelTimeoutError,
    models,
)
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.profiles.openai import OpenAIModelProfile
from pydantic_ai.providers.openai import OpenAIProvider

from support.fake_openai import FakeOpenAIServer


@pytest.fixture
def srv() -> Iterator[FakeOpenAIServer]:
    # conftest sets ALLOW_MODEL_REQUESTS = False; this server is local, so allow it here only.
    with models.override_allow_model_requests(True), FakeOpenAIServer() as server:
        yield server


def chat_model(srv: FakeOpenAIServer, *, sdk_retries: int = 0, **kwargs: Any) -> OpenAIChatModel:
    client = AsyncOpenAI(base_url=srv.base_url, api_key="test-key", max_retries=sdk_retries)
    return OpenAIChatModel("gpt-4o-mini", provider=OpenAIProvider(openai_client=client), **kwargs)


async def test_run_reply_usage_cost_and_recorded_request(srv: FakeOpenAIServer) -> None:
    model = OpenAIChatModel(
        "gpt-4o-mini", provider=OpenAIProvider(base_url=srv.base_url, api_key="test-key")
    )
    agent = Agent(model, instructions="Be brief.")

    result = await agent.run("hello there world", model_settings={"temperature": 0.3})

    assert result.output == "echo: hello there world"
    assert result.usage.input_tokens == 5  # "Be brief." + "hello there world"
    assert result.usage.output_tokens == 4
    assert isinstance(result.usage.cost, Decimal)
    assert result.usage.cost == Decimal("0.00000315")  # 5 * $0.15/M + 4 * $0.60/M
    sent = srv.last_request
    assert sent["model"] == "gpt-4o-mini"
    assert sent["temperature"] == 0.3
    assert sent["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hello there world"},
    ]
    assert srv.request_headers[-1]["authorization"] == "Bearer test-key"


async def test_max_tokens_field_depends_on_profile(srv: FakeOpenAIServer) -> None:
    await Agent(chat_model(srv)).run("x", model_settings={"max_tokens": 50})
    assert srv.last_request["max_completion_tokens"] == 50
    assert "max_tokens" not in srv.last_request

    legacy = OpenAIModelProfile(openai_chat_supports_max_completion_tokens=False)
    await Agent(chat_model(srv, profile=legacy)).run("x", model_settings={"max_tokens": 50})
    assert srv.last_request["max_tokens"] == 50
    assert "max_completion_tokens" not in srv.last_request


async def test_custom_reply_and_usage() -> None:
    def reply(body: dict[str, Any]) -> str:
        return f"{len(body['messages'])} messages"

    with (
        models.override_allow_model_requests(True),
        FakeOpenAIServer(reply, usage=lambda body, text: (100, 7)) as srv,
    ):
        result = await Agent(chat_model(srv)).run("hi")
    assert result.output == "1 messages"
    assert (result.usage.input_tokens, result.usage.output_tokens) == (100, 7)


async def test_streaming(srv: FakeOpenAIServer) -> None:
    agent = Agent(chat_model(srv))
    async with agent.run_stream("stream me please") as run:
        deltas = [d async for d in run.stream_text(delta=True, debounce_by=None)]
    assert deltas == ["echo: ", "stream ", "me ", "please"]
    assert srv.last_request["stream"] is True
    assert srv.last_request["stream_options"] == {"include_usage": True}
    assert (run.usage.input_tokens, run.usage.output_tokens) == (3, 4)


async def test_tool_call_round_trip() -> None:
    def reply(body: dict[str, Any]) -> str | dict[str, Any]:
        if body["messages"][-1]["role"] == "tool":
            return f"tool said {body['messages'][-1]['content']}"
        call = {"name": "add", "arguments": json.dumps({"a": 2, "b": 3})}
        return {"tool_calls": [{"id": "call_1", "type": "function", "function": call}]}

    with models.override_allow_model_requests(True), FakeOpenAIServer(reply) as srv:
        agent = Agent(chat_model(srv))

        @agent.tool_plain
        def add(a: int, b: int) -> int:
            return a + b

        result = await agent.run("add 2 and 3")
    assert result.output == "tool said 5"
    assert [t["function"]["name"] for t in srv.requests[0]["tools"]] == ["add"]
    assert len(srv.requests) == 2


async def test_500_raises_model_server_error_fast_without_sdk_retries(
    srv: FakeOpenAIServer,
) -> None:
    srv.fail(500, times=None)
    started = time.perf_counter()
    with pytest.raises(ModelServerError) as info:
        await Agent(chat_model(srv, sdk_retries=0)).run("x")
    assert isinstance(info.value, ModelHTTPError)  # raised class is both categories
    assert info.value.status_code == 500
    assert len(srv.requests) == 1
    assert time.perf_counter() - started < 1


async def test_429_raises_rate_limit_error_with_retry_after(srv: FakeOpenAIServer) -> None:
    srv.fail(429, times=None, retry_after=7)
    with pytest.raises(ModelRateLimitError) as info:
        await Agent(chat_model(srv, sdk_retries=0)).run("x")
    assert isinstance(info.value, ModelHTTPError)
    assert info.value.status_code == 429
    assert info.value.retry_after == 7.0
    assert len(srv.requests) == 1


async def test_max_retries_model_setting_overrides_sdk_default(srv: FakeOpenAIServer) -> None:
    model = OpenAIChatModel("gpt-4o-mini", provider=OpenAIProvider(base_url=srv.base_url))
    srv.fail(500, times=None)
    with pytest.raises(ModelServerError):
        await Agent(model).run("x", model_settings={"max_retries": 0})
    assert len(srv.requests) == 1


async def test_sdk_retry_recovers_from_one_failure(srv: FakeOpenAIServer) -> None:
    srv.fail(500, times=1)
    result = await Agent(chat_model(srv, sdk_retries=1)).run("again")
    assert result.output == "echo: again"
    assert len(srv.requests) == 2


async def test_slow_answer_times_out(srv: FakeOpenAIServer) -> None:
    srv.delay(5)
    started = time.perf_counter()
    with pytest.raises(ModelTimeoutError):
        await Agent(chat_model(srv)).run("x", model_settings={"timeout": 0.3})
    assert time.perf_counter() - started < 2
