"""Running one agent turn with Pydantic AI: history in, output, usage, cost and time out.

The runner touches no store; the chat service hands it plain records and stores the outcome.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from pydantic_ai import Agent, RunContext, UsageLimits
from pydantic_ai.exceptions import (
    AgentRunError,
    ModelAPIError,
    ModelHTTPError,
    UnexpectedModelBehavior,
    UsageLimitExceeded,
    UserError,
)
from pydantic_ai.messages import (
    AgentStreamEvent,
    FunctionToolCallEvent,
    FunctionToolResultEvent,
    ModelMessage,
    ModelRequest,
    ModelResponse,
    PartDeltaEvent,
    PartStartEvent,
    TextPart,
    TextPartDelta,
    ToolCallPart,
    ToolReturnPart,
    UserPromptPart,
)
from pydantic_ai.settings import ModelSettings
from pydantic_ai.toolsets import AbstractToolset

from employeevirtual.agents.knowledge import SEARCH_TOOL, KnowledgeSearch, RunDeps, search_tool
from employeevirtual.agents.memory import TurnMemory, memory_tools
from employeevirtual.agents.models import ModelNotAllowed, ModelRegistry
from employeevirtual.agents.team import HANDOFF_TOOL, Team, TeamRun, label_speakers, run_with_team
from employeevirtual.agents.tools import TOOLS
from employeevirtual.request_context import current_request_id
from employeevirtual.stores.records import AgentRecord, MessageRecord, TurnUsage
from employeevirtual.streaming.events import TurnEvent, truncate

__all__ = ["AgentFailure", "AgentRunner", "EventSink", "RunOutcome", "to_model_history"]

EventSink = Callable[[TurnEvent], Awaitable[None]]
MAX_TOOL_CALLS = 32  # stored per agent message; a run is bounded by its request limit anyway

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RunOutcome:
    output: str
    usage: TurnUsage
    # [{id, name, args, result, truncated}], results cut at the runner's tool_result_chars
    tool_calls: tuple[dict[str, Any], ...] = ()
    # knowledge (issue 12): each search the model made, and the passages it was shown
    knowledge_searches: tuple[dict[str, Any], ...] = ()
    sources: tuple[dict[str, Any], ...] = ()
    # teams (issue 13): the agent that answered after a handoff (None: the turn's own agent),
    # each delegated run with its own usage, each handoff
    agent: AgentRecord | None = None
    delegations: tuple[dict[str, Any], ...] = ()
    handoffs: tuple[dict[str, Any], ...] = ()


class AgentFailure(Exception):
    """The agent did not answer. ``kind`` is timeout, provider, configuration, limit or
    internal; ``usage`` is what the failed run cost (its time)."""

    def __init__(self, kind: str, message: str, *, usage: TurnUsage) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.usage = usage


def to_model_history(messages: Sequence[MessageRecord]) -> list[ModelMessage]:
    history: list[ModelMessage] = []
    for m in messages:
        if m.message_type == "user":
            history.append(ModelRequest(parts=[UserPromptPart(m.content, timestamp=m.created_at)]))
        elif m.message_type == "agent":
            calls = [c for c in m.metadata.get("tool_calls") or [] if isinstance(c, dict)]
            if calls:  # the agent remembers what it did: the calls and their (bounded) results
                history.append(
                    ModelResponse(
                        parts=[
                            ToolCallPart(c["name"], c.get("args") or {}, tool_call_id=c["id"])
                            for c in calls
                        ],
                        timestamp=m.created_at,
                    )
                )
                history.append(
                    ModelRequest(
                        parts=[
                            ToolReturnPart(
                                c["name"], str(c.get("result") or ""), tool_call_id=c["id"]
                            )
                            for c in calls
                        ]
                    )
                )
            history.append(ModelResponse(parts=[TextPart(m.content)], timestamp=m.created_at))
    return history


def tool_calls_of(messages: Sequence[ModelMessage], *, limit: int) -> list[dict[str, Any]]:
    """The run's tool calls with their results (truncated to ``limit`` characters)."""
    calls: dict[str, dict[str, Any]] = {}
    for message in messages:
        for part in message.parts:
            if isinstance(part, ToolCallPart) and part.tool_name == HANDOFF_TOOL:
                continue  # kept as the reply's ``handoffs``, not replayed as a tool call
            if isinstance(part, ToolCallPart) and len(calls) < MAX_TOOL_CALLS:
                calls[part.tool_call_id] = {
                    "id": part.tool_call_id,
                    "name": part.tool_name,
                    "args": part.args_as_dict(),
                    "result": None,
                    "truncated": False,
                }
            elif isinstance(part, ToolReturnPart) and part.tool_call_id in calls:
                result, cut = truncate(part.model_response_str(), limit)
                calls[part.tool_call_id].update(result=result, truncated=cut)
    return list(calls.values())


class AgentRunner:
    def __init__(
        self,
        models: ModelRegistry,
        *,
        timeout_seconds: float,
        max_output_tokens: int | None = None,
        max_total_tokens: int | None = None,
        request_limit: int = 10,
        tool_result_chars: int = 2000,
    ) -> None:
        self.tool_result_chars = tool_result_chars
        self.models = models
        self.timeout_seconds = timeout_seconds
        self.max_output_tokens = max_output_tokens
        self.max_total_tokens = max_total_tokens
        self.request_limit = request_limit
        self._agents: dict[tuple[Any, ...], Agent[RunDeps, str]] = {}

    def _agent(self, spec: AgentRecord) -> Agent[RunDeps, str]:
        key = (
            spec.id,
            spec.updated_at,
            spec.model,
            tuple(spec.knowledge_base_ids),
            spec.memory_enabled,
        )
        agent = self._agents.get(key)
        if agent is None:
            if len(self._agents) > 1024:
                self._agents.clear()
            settings: ModelSettings = {}
            for name in ("temperature", "max_tokens"):
                if spec.model_settings.get(name) is not None:
                    settings[name] = spec.model_settings[name]
            tools: list[Any] = [TOOLS[name] for name in spec.tools if name in TOOLS]
            if spec.knowledge_base_ids:
                tools.append(search_tool())
            if spec.memory_enabled:  # offered to the runs that have their turn's memory
                tools += memory_tools()
            agent = Agent(
                self.models.get(spec.model),
                deps_type=RunDeps,
                instructions=spec.instructions or None,
                model_settings=settings or None,
                tools=tools,
                defer_model_check=True,
                name=spec.name,
            )
            self._agents[key] = agent
        return agent

    def _handler(
        self, on_event: EventSink, deltas: list[str]
    ) -> Callable[[RunContext[RunDeps], Any], Awaitable[None]]:
        limit = self.tool_result_chars

        async def handle(_ctx: RunContext[RunDeps], stream: Any) -> None:
            event: AgentStreamEvent
            async for event in stream:
                text = None
                if isinstance(event, PartStartEvent) and isinstance(event.part, TextPart):
                    text = event.part.content  # the first chunk comes with the part
                elif isinstance(event, PartDeltaEvent) and isinstance(event.delta, TextPartDelta):
                    text = event.delta.content_delta
                elif isinstance(event, FunctionToolCallEvent):
                    part = event.part
                    await on_event(
                        TurnEvent(
                            "tool_call",
                            {
                                "id": part.tool_call_id,
                                "name": part.tool_name,
                                "args": part.args_as_dict(),
                            },
                        )
                    )
                elif isinstance(event, FunctionToolResultEvent):
                    result, cut = truncate(event.part.model_response_str(), limit)
                    await on_event(
                        TurnEvent(
                            "tool_result",
                            {
                                "id": event.tool_call_id,
                                "name": event.part.tool_name,
                                "result": result,
                                "truncated": cut,
                            },
                        )
                    )
                    content = getattr(event.part, "content", None)
                    if event.part.tool_name == SEARCH_TOOL and isinstance(content, list):
                        # the passages in full, as the answer will cite them
                        await on_event(
                            TurnEvent("sources", {"id": event.tool_call_id, "sources": content})
                        )
                if text:
                    deltas.append(text)
                    await on_event(TurnEvent("delta", {"delta": text}))

        return handle

    @staticmethod
    def _hidden(
        failure: Callable[[str, str], AgentFailure],
        kind: str,
        message: str,
        spec: AgentRecord,
        exc: BaseException,
        *,
        traceback: bool = False,
    ) -> AgentFailure:
        """A failure whose details (provider messages, credential files, environment variable
        and package names) go to the server log only; the caller gets ``message`` and the
        request id to quote."""
        log.warning(
            "agent %s (model %s) failed, %s: %s: %s",
            spec.id,
            spec.model,
            kind,
            type(exc).__name__,
            exc,
            exc_info=exc if traceback else None,
        )
        return failure(kind, message + _request_suffix())

    async def run(
        self,
        spec: AgentRecord,
        prompt: str,
        history: Sequence[MessageRecord],
        *,
        on_event: EventSink | None = None,
        knowledge: KnowledgeSearch | None = None,
        instructions: str | None = None,
        toolsets: Sequence[AbstractToolset[Any]] = (),
        memory: TurnMemory | None = None,
        team: Team | None = None,
    ) -> RunOutcome:
        """One run. With ``on_event`` the model is streamed and every text piece, tool call
        and tool result is handed to it as it happens; the outcome's text is then exactly the
        streamed pieces joined. ``instructions`` and ``toolsets``: this run's own, on top of
        the agent's (its MCP tools, its memory's instructions). ``memory``: the turn's, for the
        agent's ``remember``/``forget`` (issue 18; None: they are not offered)."""
        started = time.perf_counter()
        deltas: list[str] = []
        # ``knowledge`` searches the agent's bases that the caller may read (None: the agent
        # has none, or knowledge is unavailable)
        team_run = None if team is None else TeamRun(team, self._agent, self.tool_result_chars)
        deps = RunDeps(search=knowledge, memory=memory)
        answered = spec

        def failure(kind: str, message: str) -> AgentFailure:
            usage = TurnUsage.measured(
                model=spec.model, execution_time=time.perf_counter() - started
            )
            return AgentFailure(kind, message, usage=usage)

        try:
            limits = UsageLimits(
                request_limit=self.request_limit,
                output_tokens_limit=self.max_output_tokens,
                total_tokens_limit=self.max_total_tokens,
            )
            handler = None if on_event is None else self._handler(on_event, deltas)
            if team_run is None:
                result = await self._agent(spec).run(
                    prompt,
                    deps=deps,
                    message_history=to_model_history(label_speakers(history, spec.id)) or None,
                    usage_limits=limits,
                    timeout=self.timeout_seconds,
                    event_stream_handler=handler,
                    instructions=instructions,
                    toolsets=list(toolsets) or None,  # the run's own (MCP tools)
                )
                new_messages = result.new_messages()
            else:
                async with asyncio.timeout(self.timeout_seconds):
                    result, answered, deps, new_messages = await run_with_team(
                        team_run,
                        spec,
                        prompt,
                        deps=team_run.deps(spec, knowledge, memory=memory),
                        toolsets=list(toolsets),
                        instructions=instructions,
                        history_for=lambda agent_id: (
                            to_model_history(label_speakers(history, agent_id)) or None
                        ),
                        usage_limits=limits,
                        handler=handler,
                        on_event=on_event,
                        deltas=deltas,
                    )
        except TimeoutError:
            raise failure(
                "timeout", f"the agent did not answer within {self.timeout_seconds:g} s"
            ) from None
        except UsageLimitExceeded as exc:
            raise failure("limit", f"the agent run hit a usage limit: {exc.message}") from None
        except ModelHTTPError as exc:
            raise self._hidden(
                failure,
                "provider",
                f"the model provider answered HTTP {exc.status_code}",
                spec,
                exc,
            ) from None
        except (ModelAPIError, UnexpectedModelBehavior) as exc:
            raise self._hidden(
                failure, "provider", "the model provider failed", spec, exc
            ) from None
        except ModelNotAllowed as exc:  # our own policy: the message says what to do
            raise failure("configuration", f"the agent cannot run: {exc}") from None
        except (UserError, AgentRunError) as exc:
            raise self._hidden(
                failure,
                "configuration",
                "the agent's model is not usable on this server",
                spec,
                exc,
            ) from None
        except Exception as exc:
            # a failed run must still be recorded as one, never become a half-written turn
            raise self._hidden(
                failure, "internal", "the agent failed unexpectedly", spec, exc, traceback=True
            ) from None
        usage = result.usage
        return RunOutcome(
            output="".join(deltas) if deltas else str(result.output),
            usage=TurnUsage.measured(
                model=spec.model,
                input_tokens=usage.input_tokens or 0,
                output_tokens=usage.output_tokens or 0,
                cost=_cost(usage),
                execution_time=time.perf_counter() - started,
            ),
            tool_calls=tuple(tool_calls_of(new_messages, limit=self.tool_result_chars)),
            knowledge_searches=tuple(deps.searches),
            sources=tuple(deps.sources),
            agent=None if answered.id == spec.id else answered,
            delegations=tuple(team_run.attributed()) if team_run else (),
            handoffs=tuple(team_run.handoffs) if team_run else (),
        )


def _request_suffix() -> str:
    rid = current_request_id()
    return f"; request id {rid}" if rid else ""


def _cost(usage: Any) -> Decimal | None:
    cost = getattr(usage, "cost", None)
    return None if cost is None else Decimal(cost)
