"""The ``remember`` and ``forget`` tools an agent keeping memory gets, like the knowledge search.

They are the agent's own tools, not a toolset added to each run (issue 17: Pydantic AI gathers a
run's toolsets in a task group, ≈0.25 ms more CPU a run). A run reaches its turn's memory through
``RunDeps.memory``; a run without one (memory off on the server, reading it failed, a delegate's
run) is not offered them. What they do is the turn's memory's (``memory.tools.MemoryTurn``).
"""

from __future__ import annotations

from typing import Any, Protocol

from pydantic_ai import RunContext, Tool, ToolDefinition

from employeevirtual.agents.knowledge import RunDeps

__all__ = ["FORGET_TOOL", "MEMORY_TOOLS", "REMEMBER_TOOL", "TurnMemory", "memory_tools"]

REMEMBER_TOOL = "remember"
FORGET_TOOL = "forget"
MEMORY_TOOLS = (REMEMBER_TOOL, FORGET_TOOL)


class TurnMemory(Protocol):
    """A turn's memory as its tools see it."""

    async def remember(self, fact: str) -> dict[str, Any]: ...

    async def forget(self, memory_id: str) -> dict[str, Any]: ...


def _turn_of(ctx: RunContext[RunDeps]) -> TurnMemory:
    memory = ctx.deps.memory
    assert memory is not None, "offered only to a run with its turn's memory"
    return memory


def _offered(ctx: RunContext[RunDeps], tool: ToolDefinition) -> ToolDefinition | None:
    """Only to a run with its turn's memory (sync: a call, no coroutine, each model request)."""
    return tool if ctx.deps is not None and ctx.deps.memory is not None else None


async def remember(ctx: RunContext[RunDeps], fact: str) -> dict[str, Any]:
    """Remember a short fact or preference about the person for later conversations, e.g.
    "Prefers answers in Portuguese" or "Their manager is Ana". One fact per call."""
    return await _turn_of(ctx).remember(fact)


async def forget(ctx: RunContext[RunDeps], memory_id: str) -> dict[str, Any]:
    """Forget a memory, by the id shown in brackets before it (or its full id)."""
    return await _turn_of(ctx).forget(memory_id)


def memory_tools() -> list[Tool[RunDeps]]:
    """``remember`` and ``forget``, for an agent whose spec keeps memory."""
    return [
        Tool(function, takes_ctx=True, name=name, max_retries=1, prepare=_offered)
        for name, function in ((REMEMBER_TOOL, remember), (FORGET_TOOL, forget))
    ]
