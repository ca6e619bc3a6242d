"""The summarizer's one model request (no agent run): the operator's model gets the
instructions and the dialogue, its answer is cut to ``max_chars``, a request is bounded by
``timeout_seconds``, and an answer without text is an error, never an empty summary."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime

import pytest
from pydantic_ai.exceptions import UnexpectedModelBehavior
from pydantic_ai.messages import ModelMessage, ModelRequest, ModelResponse, TextPart
from pydantic_ai.models.function import AgentInfo, FunctionModel

from employeevirtual.agents.models import ModelRegistry
from employeevirtual.memory.summaries import Summarizer
from employeevirtual.stores.records import MessageRecord, MessageType


def _message(seq: int, kind: MessageType, content: str) -> MessageRecord:
    return MessageRecord(
        id=uuid.uuid4(),
        conversation_id=uuid.uuid4(),
        seq=seq,
        user_id=uuid.uuid4(),
        agent_id=None,
        content=content,
        message_type=kind,
        metadata={},
        created_at=datetime.now(UTC),
    )


def _summarizer(model: FunctionModel, **kwargs: float) -> Summarizer:
    models = ModelRegistry(openai_base_url=None, openai_api_key=None)
    models.override("test:summary", model)
    models.override("test:agent", FunctionModel(lambda m, i: ModelResponse(parts=[])))
    options = {"max_chars": 40, "timeout_seconds": 5.0} | kwargs
    return Summarizer(
        models,
        model="test:summary",
        max_chars=int(options["max_chars"]),
        timeout_seconds=options["timeout_seconds"],
    )


async def test_the_operators_model_gets_instructions_and_dialogue_once() -> None:
    seen: list[tuple[list[ModelMessage], AgentInfo]] = []

    def answer(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        seen.append((messages, info))
        return ModelResponse(parts=[TextPart("  The person likes tea and lives at number 12.  ")])

    summarizer = _summarizer(FunctionModel(answer))
    dialogue = [_message(1, "user", "I like tea."), _message(2, "agent", "Noted.")]
    model = summarizer.model_for("test:agent")  # the operator's model, not the agent's
    assert model == "test:summary"
    out = await summarizer.summarize("Lives at number 12.", dialogue, model=model)

    assert out == "The person likes tea and lives at number 12."[:40]
    (messages, info) = seen[0]
    assert len(seen) == 1 and len(messages) == 1
    assert info.instructions is not None and "running summary" in info.instructions
    assert "at most 40 characters" in info.instructions
    assert info.function_tools == [] and info.allow_text_output
    request = messages[0]
    assert isinstance(request, ModelRequest)
    prompt = str(request.parts[0].content)
    assert "Lives at number 12." in prompt
    assert "#1 user: I like tea." in prompt and "#2 agent: Noted." in prompt


async def test_a_summary_request_is_bounded_by_the_timeout() -> None:
    async def hang(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        await asyncio.sleep(60)
        return ModelResponse(parts=[TextPart("too late")])

    summarizer = _summarizer(FunctionModel(hang), timeout_seconds=0.2)
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        await summarizer.summarize("", [_message(1, "user", "hi")], model="test:summary")
    assert time.monotonic() - started < 5


async def test_an_answer_without_text_is_an_error_not_an_empty_summary() -> None:
    summarizer = _summarizer(FunctionModel(lambda m, i: ModelResponse(parts=[TextPart("  ")])))
    with pytest.raises(UnexpectedModelBehavior):
        await summarizer.summarize("kept", [_message(1, "user", "hi")], model="test:summary")
