"""The agent's ``remember``/``forget`` tools act on the run's own turn (``RunDeps.memory``); a
run without one is not offered them (memory off on the server, reading it failed, a delegate, an
agent handed the turn); and the model is offered the same tool definitions, with the same retry,
as when they were a per-run toolset of the turn's own methods."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic_ai import Agent, FunctionToolset
from pydantic_ai.exceptions import UnexpectedModelBehavior
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart
from pydantic_ai.models.function import AgentInfo, FunctionModel

from employeevirtual.agents.knowledge import RunDeps
from employeevirtual.agents.memory import FORGET_TOOL, REMEMBER_TOOL, memory_tools
from employeevirtual.agents.models import ModelRegistry
from employeevirtual.agents.runner import AgentRunner
from employeevirtual.agents.team import Team, delegate_tool_name
from employeevirtual.memory.tools import MemoryTurn
from employeevirtual.stores.records import AgentRecord
from employeevirtual.stores.sql.memory import MemoryScope

MEMORY = [REMEMBER_TOOL, FORGET_TOOL]


def _turn() -> MemoryTurn:
    scope = MemoryScope(
        user_id=uuid.uuid4(), agent_id=uuid.uuid4(), conversation_id=None, shared=True
    )
    return MemoryTurn(
        scope=scope, memories=[], given=[], summary=None, max_count=10, max_chars=200, max_calls=3
    )


def _rememberer(fact: str, offered: list[list[Any]]) -> FunctionModel:
    """Calls ``remember`` with ``fact`` when it is offered, then answers."""

    async def model(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        offered.append(list(info.function_tools))
        names = [t.name for t in info.function_tools]
        if len(messages) == 1 and REMEMBER_TOOL in names:
            return ModelResponse(parts=[ToolCallPart(REMEMBER_TOOL, {"fact": fact})])
        return ModelResponse(parts=[TextPart("noted")])

    return FunctionModel(model)


def _agent(model: FunctionModel) -> Agent[RunDeps, str]:
    return Agent(model, deps_type=RunDeps, tools=memory_tools())


async def test_each_turns_tools_write_to_that_turn_only() -> None:
    first, second, offered = _turn(), _turn(), []
    agent = _agent(_rememberer("Likes tea", offered))
    await agent.run("remember this", deps=RunDeps(memory=first))
    agent = _agent(_rememberer("Likes   coffee", offered))
    await agent.run("remember this", deps=RunDeps(memory=second))
    assert list(first.saved.values()) == ["Likes tea"]
    assert list(second.saved.values()) == ["Likes coffee"]
    assert first.calls == second.calls == 1


async def test_a_run_without_its_turns_memory_is_not_offered_them() -> None:
    offered: list[list[Any]] = []
    result = await _agent(_rememberer("Likes tea", offered)).run("hi", deps=RunDeps())
    assert result.output == "noted"
    assert offered == [[]]


async def test_the_tools_offered_are_those_the_turns_methods_make() -> None:
    turn, offered, offered_before = _turn(), [], []
    await _agent(_rememberer("Likes tea", offered)).run("remember this", deps=RunDeps(memory=turn))

    # what the per-run toolset offered: the turn's methods as they were, text for text
    async def remember(fact: str) -> dict[str, Any]:
        """Remember a short fact or preference about the person for later conversations, e.g.
        "Prefers answers in Portuguese" or "Their manager is Ana". One fact per call."""
        return {}

    async def forget(memory_id: str) -> dict[str, Any]:
        """Forget a memory, by the id shown in brackets before it (or its full id)."""
        return {}

    before: FunctionToolset[Any] = FunctionToolset(max_retries=1)  # the per-run toolset's way
    before.add_function(remember, takes_ctx=False, name=REMEMBER_TOOL)
    before.add_function(forget, takes_ctx=False, name=FORGET_TOOL)
    await Agent(_rememberer("Likes tea", offered_before)).run("remember this", toolsets=[before])
    assert [t.name for t in offered[0]] == MEMORY
    # the toolset's id is not sent to a model; everything else must be as before
    assert [replace(t, toolset_id=None) for t in offered[0]] == offered_before[0]
    assert offered[0][1].description.startswith("Forget a memory")


async def test_an_empty_fact_is_retried_once() -> None:
    calls = 0

    async def model(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        nonlocal calls
        calls += 1
        return ModelResponse(parts=[ToolCallPart(REMEMBER_TOOL, {"fact": "  "})])

    with pytest.raises(UnexpectedModelBehavior, match="exceeded max retries count of 1"):
        await _agent(FunctionModel(model)).run("hi", deps=RunDeps(memory=_turn()))
    assert calls == 2


# -- through the runner ------------------------------------------------------------------------


def _spec(name: str, model: str, **fields: Any) -> AgentRecord:
    return AgentRecord(
        id=uuid.uuid4(),
        user_id=uuid.UUID(int=1),
        name=name,
        description=None,
        instructions="Be brief.",
        model=model,
        model_settings={},
        tools=[],
        visibility="private",
        created_at=datetime.now(UTC),
        updated_at=None,
        **fields,
    )


def _runner(models: dict[str, FunctionModel]) -> AgentRunner:
    registry = ModelRegistry(openai_base_url=None, openai_api_key=None)
    for name, model in models.items():
        registry.override(name, model)
    return AgentRunner(registry, timeout_seconds=10)


async def test_the_runner_offers_them_to_an_agent_keeping_memory_with_its_turn_only() -> None:
    offered: list[list[Any]] = []
    runner = _runner({"test:r": _rememberer("Likes tea", offered)})
    keeps, keeps_none = _spec("keeps", "test:r"), _spec("off", "test:r", memory={"enabled": False})
    turn = _turn()
    outcome = await runner.run(keeps, "remember this", [], memory=turn)
    assert [c["name"] for c in outcome.tool_calls] == [REMEMBER_TOOL]
    assert list(turn.saved.values()) == ["Likes tea"]
    assert [t.name for t in offered[0]] == MEMORY
    offered.clear()
    await runner.run(keeps, "hi", [])  # no turn: memory off on the server, or reading it failed
    await runner.run(keeps_none, "hi", [])
    assert offered == [[], []]


async def test_in_a_team_only_the_turns_own_agent_is_offered_them() -> None:
    """The delegate and the agent handed the turn keep memory too, but not in this turn."""
    offered: dict[str, list[list[str]]] = {"lead": [], "helper": []}
    helper = _spec("helper", "test:helper")

    def scripted(name: str, steps: list[ModelResponse]) -> FunctionModel:
        async def model(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
            offered[name].append([t.name for t in info.function_tools])
            done = sum(isinstance(m, ModelResponse) for m in messages)
            return steps[min(done, len(steps) - 1)]

        return FunctionModel(model)

    lead_steps = [
        ModelResponse(parts=[ToolCallPart(REMEMBER_TOOL, {"fact": "Lead fact"})]),
        ModelResponse(parts=[ToolCallPart(delegate_tool_name(helper), {"task": "help"})]),
        ModelResponse(parts=[ToolCallPart("handoff", {"agent": "helper"})]),
    ]
    runner = _runner(
        {
            "test:lead": scripted("lead", lead_steps),
            "test:helper": scripted("helper", [ModelResponse(parts=[TextPart("helped")])]),
        }
    )
    lead = _spec("lead", "test:lead", delegate_ids=[helper.id])
    team = Team(
        members={helper.id: helper},
        usable=frozenset({helper.id}),
        max_depth=2,
        max_handoffs=1,
        knowledge_for=lambda agent: None,
    )
    turn = _turn()
    outcome = await runner.run(lead, "hi", [], memory=turn, team=team)
    assert outcome.output == "helped" and outcome.agent == helper
    assert list(turn.saved.values()) == ["Lead fact"]
    ask = delegate_tool_name(helper)
    assert offered["lead"] == [[*MEMORY, ask]] * 3
    assert offered["helper"] == [[], []]  # asked, then handed the turn
