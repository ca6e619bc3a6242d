"""A knowledge search made in one turn is replayed to the model on later turns, as history (the
call and the passages it returned), like any other tool call (issue 12: sources are "replayed to
the model like other tool results"). Both turn kinds: a plain turn and a streamed one."""

from __future__ import annotations

from collections.abc import AsyncIterator

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

from employeevirtual.agents.knowledge import SEARCH_TOOL
from employeevirtual.runtime import Runtime
from support.api import create_agent, register_and_login
from support.knowledge import create_base, upload, wait_done

REFUNDS = b"""# Refund policy

Customers of Lumen Outfitters may return any unworn item within 45 days of delivery for a full
refund. Refunds are paid to the original card within 7 business days.
"""

MODEL = "openai-chat:kb-recorder"
QUERY = "refund window in days"


def _recording_model(seen: list[list[ModelMessage]]) -> FunctionModel:
    """On a conversation's first request it searches the knowledge, then answers from the
    passages; on a later turn it answers from its history. Records every list of messages."""

    def opening(messages: list[ModelMessage]) -> bool:  # the conversation's first request
        return len(messages) == 1

    async def reply(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        seen.append(list(messages))
        if opening(messages):
            return ModelResponse(parts=[ToolCallPart(SEARCH_TOOL, {"query": QUERY}, "kb1")])
        if isinstance(messages[-1].parts[-1], ToolReturnPart):
            return ModelResponse(parts=[TextPart("You have 45 days (refunds).")])
        return ModelResponse(parts=[TextPart("as I found before")])

    async def stream(
        messages: list[ModelMessage], info: AgentInfo
    ) -> AsyncIterator[str | DeltaToolCalls]:
        seen.append(list(messages))
        if opening(messages):
            args = f'{{"query": "{QUERY}"}}'
            yield {0: DeltaToolCall(name=SEARCH_TOOL, json_args=args, tool_call_id="kb1")}
        else:
            yield "You have 45 days (refunds)."

    return FunctionModel(reply, stream_function=stream, model_name=MODEL)


@pytest.mark.parametrize("streamed", [False, True], ids=["plain", "streamed"])
async def test_a_knowledge_search_is_replayed_to_the_model_on_later_turns(
    client: httpx.AsyncClient, runtime: Runtime, streamed: bool
) -> None:
    seen: list[list[ModelMessage]] = []
    runtime.models.override(MODEL, _recording_model(seen))
    headers = await register_and_login(client)
    base = await create_base(client, headers)
    doc = await upload(client, headers, base["id"], "refunds.md", REFUNDS)
    assert (await wait_done(client, headers, base["id"], doc["id"]))["status"] == "ready"
    agent = await create_agent(client, headers, model=MODEL, knowledge_base_ids=[base["id"]])

    first_headers = {**headers, "Accept": "text/event-stream"} if streamed else headers
    r = await client.post(
        "/api/chat/agent",
        json={"message": "How long do I have to return things?", "agent_id": agent["id"]},
        headers=first_headers,
    )
    assert r.status_code == 200, r.text
    r = await client.get("/api/conversations", headers=headers)
    conversation_id = r.json()["items"][0]["id"]
    history = await client.get(f"/api/conversations/{conversation_id}/messages", headers=headers)
    reply = history.json()["messages"][-1]
    assert reply["sources"] and reply["sources"][0]["document_id"] == doc["id"]

    seen.clear()
    r = await client.post(
        "/api/chat/agent",
        json={"message": "Remind me: how many days?", "conversation_id": conversation_id},
        headers=headers,
    )
    assert r.status_code == 200, r.text
    assert r.json()["agent_message"]["content"] == "as I found before"
    # the second turn's model request carries the first turn's search: the call with its
    # query, and the passages it returned, between the first question and the first answer
    parts = [p for m in seen[0] for p in m.parts]
    kinds = [type(p).__name__ for p in parts]
    assert kinds == [
        "UserPromptPart",
        "ToolCallPart",
        "ToolReturnPart",
        "TextPart",
        "UserPromptPart",
    ], kinds
    call, result = parts[1], parts[2]
    assert isinstance(call, ToolCallPart) and isinstance(result, ToolReturnPart)
    assert call.tool_name == SEARCH_TOOL and call.args_as_dict() == {"query": QUERY}
    assert result.tool_name == SEARCH_TOOL and result.tool_call_id == call.tool_call_id
    assert "45 days" in result.model_response_str()
    assert doc["id"] in result.model_response_str()  # the source's ids, for a citation
    last = parts[-1]
    assert isinstance(last, UserPromptPart) and last.content == "Remind me: how many days?"
