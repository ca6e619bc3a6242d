"""Teams of agents in one turn (issue 13): delegates as tools, and the ``handoff`` tool.

A delegate is offered to the model as a tool taking a ``task`` and returning the delegate's
answer. The delegate runs with its own instructions, model, tools, knowledge and delegates,
one level deeper (no delegates are offered at ``max_depth``). It shares the turn's usage object
and usage limits, so its tokens and cost are summed into the turn and one limit covers the
whole turn. Each delegated run is recorded (who was asked, the task, the answer, its own
tokens, cost and time) for the reply's metadata and ``chat_analytics``.

``handoff`` is an output tool: when the model calls it the agent's run ends there, and the
agent it names (one of its delegates that the conversation's user may use) answers the same
message with the same context. The reply is that agent's, and the conversation moves to it.

The runner touches no store: ``Team`` is resolved by the chat service before the run.
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any
from uuid import UUID

from pydantic_ai import Agent, AgentRunResult, ModelRetry, RunContext, Tool, UsageLimits
from pydantic_ai.exceptions import ModelAPIError, UnexpectedModelBehavior
from pydantic_ai.messages import ModelMessage, ToolCallPart
from pydantic_ai.output import ToolOutput
from pydantic_ai.toolsets import AbstractToolset, FunctionToolset

from employeevirtual.agents.delegates import may_delegate_to
from employeevirtual.agents.knowledge import KnowledgeSearch, RunDeps
from employeevirtual.agents.memory import TurnMemory
from employeevirtual.stores.records import AgentRecord, MessageRecord
from employeevirtual.streaming.events import TurnEvent, truncate

__all__ = [
    "HANDOFF_TOOL",
    "Handoff",
    "Team",
    "TeamDeps",
    "TeamRun",
    "delegate_tool_name",
    "label_speakers",
    "run_with_team",
]

HANDOFF_TOOL = "handoff"
MAX_TASK_CHARS = 8000


def delegate_tool_name(agent: AgentRecord) -> str:
    """``ask_<name>_<id prefix>``: readable for the model, unique per agent."""
    slug = re.sub(r"[^a-z0-9]+", "_", agent.name.lower()).strip("_")[:40] or "agent"
    return f"ask_{slug}_{agent.id.hex[:6]}"


@dataclass(frozen=True, slots=True)
class Team:
    """The agents a turn may reach, resolved before it runs. ``members``: every live agent
    reachable from the turn's agent within ``max_depth`` (by id); ``usable``: those the
    conversation's user may talk to (handoff targets must be among them)."""

    members: Mapping[UUID, AgentRecord]
    usable: frozenset[UUID]
    max_depth: int
    max_handoffs: int
    knowledge_for: Callable[[AgentRecord], KnowledgeSearch | None]
    # each member's own run toolsets (its MCP tools, for this caller); none by default
    tools_for: Callable[[AgentRecord], Awaitable[list[AbstractToolset[Any]]]] | None = None

    async def own_toolsets(self, agent: AgentRecord) -> list[AbstractToolset[Any]]:
        return [] if self.tools_for is None else await self.tools_for(agent)

    def delegates_of(self, agent: AgentRecord) -> list[AgentRecord]:
        return [
            self.members[i]
            for i in agent.delegate_ids
            if i in self.members and may_delegate_to(agent.user_id, self.members[i])
        ]

    def handoff_targets(self, agent: AgentRecord) -> list[AgentRecord]:
        return [d for d in self.delegates_of(agent) if d.id in self.usable]


@dataclass(frozen=True, slots=True)
class Handoff:
    """What a run that called ``handoff`` ends with."""

    to: AgentRecord
    note: str


@dataclass
class TeamDeps(RunDeps):
    """A run's deps inside a team: which agent runs, how deep, and the turn's shared record."""

    team_run: TeamRun | None = None
    agent: AgentRecord | None = None
    depth: int = 0
    entry: str | None = None  # this run's delegation entry (None: the turn's own agent)


@dataclass
class TeamRun:
    """One turn's team: builds the delegates' agents and records every delegated run."""

    team: Team
    build: Callable[[AgentRecord], Agent[RunDeps, str]]
    result_chars: int
    delegations: list[dict[str, Any]] = field(default_factory=list)
    handoffs: list[dict[str, Any]] = field(default_factory=list)

    def deps(
        self,
        agent: AgentRecord,
        search: KnowledgeSearch | None,
        *,
        depth: int = 0,
        entry: str | None = None,
        memory: TurnMemory | None = None,
    ) -> TeamDeps:
        """``memory``: the turn's, for the turn's own agent's first run only."""
        return TeamDeps(
            search=search, memory=memory, team_run=self, agent=agent, depth=depth, entry=entry
        )

    def toolsets(self, agent: AgentRecord, depth: int) -> list[AbstractToolset[Any]]:
        """The delegates as tools (none at the depth cap)."""
        if depth >= self.team.max_depth:
            return []
        tools = [self._tool(d) for d in self.team.delegates_of(agent)]
        return [FunctionToolset(tools)] if tools else []

    def output_type(self, agent: AgentRecord, *, exclude: Collection[UUID] = ()) -> Any:
        """Text, or (with targets, and handoffs left in the turn) the ``handoff`` tool: never
        back to an agent that already had the turn."""
        targets: list[AgentRecord] = []
        if len(self.handoffs) < self.team.max_handoffs:
            targets = [t for t in self.team.handoff_targets(agent) if t.id not in exclude]
        if not targets:
            return None
        listed = "; ".join(f"{t.name} (id {t.id})" for t in targets)

        async def handoff(ctx: RunContext[RunDeps], agent: str, note: str = "") -> Handoff:
            wanted = agent.strip().lower()
            for t in targets:
                if wanted in (str(t.id), t.name.lower()):
                    return Handoff(t, note[:1000])
            raise ModelRetry(f"unknown agent {agent!r}; you may hand over to: {listed}")

        return [
            str,
            ToolOutput(
                handoff,
                name=HANDOFF_TOOL,
                description="Hand this conversation over to a colleague, who answers the "
                "user's message now and the conversation from then on. `agent`: their name "
                f"or id, one of: {listed}. `note`: what they should know.",
                max_retries=1,
            ),
        ]

    def _tool(self, delegate: AgentRecord) -> Tool[RunDeps]:
        async def ask(ctx: RunContext[RunDeps], task: str) -> str:
            return await self.ask(ctx, delegate, task)

        about = f" ({delegate.description})" if delegate.description else ""
        return Tool(
            ask,
            takes_ctx=True,
            name=delegate_tool_name(delegate),
            description=f"Ask your colleague {delegate.name}{about} to do a task and return "
            "their answer. `task`: a complete, self-contained request (they do not see this "
            "conversation).",
            max_retries=0,
        )

    async def ask(self, ctx: RunContext[RunDeps], delegate: AgentRecord, task: str) -> str:
        """Run ``delegate`` on ``task`` inside the turn: same usage object, same limits."""
        deps = ctx.deps
        parent = deps.agent if isinstance(deps, TeamDeps) else None
        depth = (deps.depth if isinstance(deps, TeamDeps) else 0) + 1
        entry_id = f"d{len(self.delegations) + 1}"
        entry: dict[str, Any] = {
            "id": entry_id,
            "tool_call_id": ctx.tool_call_id,
            "agent_id": str(delegate.id),
            "agent_name": delegate.name,
            "model": delegate.model,
            "parent": deps.entry if isinstance(deps, TeamDeps) else None,
            "parent_agent_id": str(parent.id) if parent else None,
            "depth": depth,
            "task": truncate(task, self.result_chars)[0],
            "answer": None,
            "status": "running",
        }
        self.delegations.append(entry)
        usage = ctx.usage
        before = (usage.input_tokens, usage.output_tokens, usage.cost)
        started = time.perf_counter()
        child = self.deps(delegate, self.team.knowledge_for(delegate), depth=depth, entry=entry_id)
        status = "interrupted"  # what a limit, a timeout or a cancellation leaves
        try:
            result = await self.build(delegate).run(
                task[:MAX_TASK_CHARS],
                deps=child,
                usage=usage,
                usage_limits=ctx.usage_limits,
                toolsets=[
                    *await self.team.own_toolsets(delegate),
                    *self.toolsets(delegate, depth),
                ],
            )
            answer, status = result.output, "success"
        except (ModelAPIError, UnexpectedModelBehavior) as exc:
            # the colleague failed, not the turn: the model is told and may go on without it
            answer = f"{delegate.name} could not answer ({type(exc).__name__}); go on without it"
            status = "failed"
        finally:
            entry.update(
                _spent(before, (usage.input_tokens, usage.output_tokens, usage.cost)),
                execution_time=round(time.perf_counter() - started, 6),
                status=status,
            )
        entry["answer"], entry["truncated"] = truncate(answer, self.result_chars)
        return answer

    def attributed(self) -> list[dict[str, Any]]:
        """The delegated runs with each one's own usage: what it spent minus what the runs it
        delegated spent (so the turn's agent and every delegate add up to the turn)."""
        out = [dict(e) for e in self.delegations]
        for e in out:
            children = [c for c in self.delegations if c["parent"] == e["id"]]
            e["total_input_tokens"] = e.get("input_tokens", 0)
            e["total_output_tokens"] = e.get("output_tokens", 0)
            e["total_cost"] = e.get("cost")
            e["input_tokens"] = e.get("input_tokens", 0) - sum(
                c.get("input_tokens", 0) for c in children
            )
            e["output_tokens"] = e.get("output_tokens", 0) - sum(
                c.get("output_tokens", 0) for c in children
            )
            if e.get("cost") is not None:
                e["cost"] = e["cost"] - sum(c.get("cost") or 0.0 for c in children)
        return out


def _spent(before: tuple[int, int, Any], after: tuple[int, int, Any]) -> dict[str, Any]:
    cost = None
    if after[2] is not None:
        cost = float(Decimal(after[2]) - Decimal(before[2] or 0))
    return {
        "input_tokens": (after[0] or 0) - (before[0] or 0),
        "output_tokens": (after[1] or 0) - (before[1] or 0),
        "cost": cost,
    }


def label_speakers(history: Sequence[MessageRecord], agent_id: UUID) -> list[MessageRecord]:
    """When other agents wrote some of ``history``, every agent message is labelled with the
    agent that wrote it (``[Name]: ...``), so the agent now answering tells them apart; a
    conversation with one agent is given as it is."""
    writers = {m.agent_id for m in history if m.message_type == "agent" and m.agent_id}
    if not writers - {agent_id}:
        return list(history)
    out = []
    for m in history:
        if m.message_type == "agent" and m.agent_id:
            name = m.metadata.get("agent_name") or f"agent {str(m.agent_id)[:8]}"
            m = replace(m, content=f"[{name}]: {m.content}")
        out.append(m)
    return out


async def run_with_team(
    team_run: TeamRun,
    spec: AgentRecord,
    prompt: str,
    *,
    deps: TeamDeps,
    toolsets: list[AbstractToolset[Any]],
    instructions: str | None,
    history_for: Callable[[UUID], list[ModelMessage] | None],
    usage_limits: UsageLimits,
    handler: Any,
    on_event: Callable[[TurnEvent], Awaitable[None]] | None,
    deltas: list[str],
) -> tuple[AgentRunResult[Any], AgentRecord, TeamDeps, list[ModelMessage]]:
    """The turn's agent with its team; after a ``handoff`` the named agent answers the same
    message (same context, same usage and limits), and so on up to ``max_handoffs``. Returns
    the last run's result, the agent that answered, its deps and every run's new messages."""
    # the first agent's run has the turn's own ``instructions``, ``toolsets`` (its MCP tools)
    # and memory (in ``deps``: its ``remember``/``forget``); an agent handed the turn gets its
    # own MCP tools and the handoff's note, and no memory (its deps have none)
    agent, run_deps, usage, note = spec, deps, None, instructions
    had_turn = {spec.id}
    messages: list[ModelMessage] = []
    while True:
        result = await team_run.build(agent).run(
            prompt,
            deps=run_deps,
            message_history=history_for(agent.id),
            usage_limits=usage_limits,
            usage=usage,
            toolsets=[*toolsets, *team_run.toolsets(agent, 0)],
            output_type=team_run.output_type(agent, exclude=had_turn),
            instructions=note,
            event_stream_handler=handler,
        )
        messages += result.new_messages()
        if not isinstance(result.output, Handoff):
            return result, agent, run_deps, messages
        handoff = result.output
        call = next(
            (
                p.tool_call_id
                for m in reversed(result.new_messages())
                for p in m.parts
                if isinstance(p, ToolCallPart) and p.tool_name == HANDOFF_TOOL
            ),
            None,
        )
        record = {
            "from_agent_id": str(agent.id),
            "from_agent_name": agent.name,
            "to_agent_id": str(handoff.to.id),
            "to_agent_name": handoff.to.name,
            "by": "agent",
            "note": handoff.note,
            "tool_call_id": call,
        }
        team_run.handoffs.append(record)
        if on_event is not None:
            await on_event(TurnEvent("handoff", record))
        deltas.clear()  # the answer is the new agent's; what the first one wrote is dropped
        note = f"{agent.name} handed this conversation over to you." + (
            f" Their note: {handoff.note}" if handoff.note else ""
        )
        usage = result.usage
        agent = handoff.to
        had_turn.add(agent.id)
        run_deps = team_run.deps(agent, team_run.team.knowledge_for(agent))
        toolsets = await team_run.team.own_toolsets(agent)
