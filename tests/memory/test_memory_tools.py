"""The ``remember``/``forget`` tools of one turn act on that turn only, although their schema is
built once for all turns; and the model is offered the same tool definitions as before."""

from __future__ import annotations

import uuid
from typing import Any

from pydantic_ai import Agent, FunctionToolset
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart
from pydantic_ai.models.function import AgentInfo, FunctionModel

from employeevirtual.memory.tools import FORGET_TOOL, REMEMBER_TOOL, MemoryTurn
from employeevirtual.stores.sql.memory import MemoryScope


def _turn() -> MemoryTurn:
    scope = MemoryScope(
        user_id=uuid.uuid4(), agent_id=uuid.uuid4(), conversation_id=None, shared=True
    )
    return MemoryTurn(
        scope=scope, memories=[], given=[], summary=None, max_count=10, max_chars=200, max_calls=3
    )


async def _run(turn: MemoryTurn, fact: str, offered: list[Any]) -> None:
    async def model(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        offered.append(info.function_tools)
        if len(messages) == 1:
            return ModelResponse(parts=[ToolCallPart(REMEMBER_TOOL, {"fact": fact})])
        return ModelResponse(parts=[TextPart("noted")])

    await Agent(FunctionModel(model)).run("remember this", toolsets=turn.toolsets)


async def test_each_turns_tools_write_to_that_turn_only() -> None:
    first, second, offered = _turn(), _turn(), []
    await _run(first, "Likes tea", offered)
    await _run(second, "Likes   coffee", offered)
    assert list(first.saved.values()) == ["Likes tea"]
    assert list(second.saved.values()) == ["Likes coffee"]
    assert first.calls == second.calls == 1


async def test_the_tools_offered_are_those_add_function_makes() -> None:
    turn, offered = _turn(), []
    await _run(turn, "Likes tea", offered)
    fresh: FunctionToolset[Any] = FunctionToolset(max_retries=1)
    fresh.add_function(turn.remember, takes_ctx=False, name=REMEMBER_TOOL)
    fresh.add_function(turn.forget, takes_ctx=False, name=FORGET_TOOL)
    (built,) = turn.toolsets
    for name in (REMEMBER_TOOL, FORGET_TOOL):
        ours, theirs = built.tools[name], fresh.tools[name]
        assert ours.function_schema.json_schema == theirs.function_schema.json_schema
        assert ours.description == theirs.description and ours.max_retries == 1
    assert sorted(t.name for t in offered[0]) == [FORGET_TOOL, REMEMBER_TOOL]
