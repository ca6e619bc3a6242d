"""Helpers for live-turn tests: a model that streams at a set pace, and stored messages."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart
from pydantic_ai.models.function import AgentInfo, FunctionModel

from employeevirtual.runtime import Runtime
from employeevirtual.stores.sql.tables import messages

WORDS = [f"w{i} " for i in range(30)]


def paced(model_name: str, *, delay: float, words: list[str] = WORDS) -> FunctionModel:
    """Streams ``words``, one every ``delay`` seconds (and answers them whole unstreamed)."""

    async def reply(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        return ModelResponse(parts=[TextPart("".join(words))])

    async def stream(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[str]:
        for word in words:
            await asyncio.sleep(delay)
            yield word

    return FunctionModel(reply, stream_function=stream, model_name=model_name)


async def stored_messages(runtime: Runtime, conversation_id: str) -> list[dict[str, Any]]:
    """A conversation's SQL rows, in seq order."""
    m = messages.c
    async with runtime.engine.connect() as conn:
        rows = await conn.execute(
            messages.select().where(m.conversation_id == uuid.UUID(conversation_id)).order_by(m.seq)
        )
        return [dict(r._mapping) for r in rows]
