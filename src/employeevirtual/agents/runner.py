"""Running one agent turn with Pydantic AI: history in, output, usage, cost and time out.

The runner touches no store; the chat service hands it plain records and stores the outcome.
"""

from __future__ import annotations

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

from employeevirtual.agents.models import ModelRegistry
from employeevirtual.agents.tools import TOOLS
from employeevirtual.stores.records import AgentRecord, MessageRecord
from employeevirtual.streaming.events import TurnEvent, truncate

__all__ = ["AgentFailure", "AgentRunner", "EventSink", "RunOutcome", "to_model_history"]

EventSink = Callable[[TurnEvent], Awaitable[None]]
MAX_TOOL_CALLS = 32  # stored per agent message; a run is bounded by its request limit anyway

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RunOutcome:
    output: str
    model_name: str
    input_tokens: int
    output_tokens: int
    cost: Decimal | None
    execution_time: float
    # [{id, name, args, result, truncated}], results cut at the runner's tool_result_chars
    tool_calls: tuple[dict[str, Any], ...] = ()

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens


class AgentFailure(Exception):
    """The agent did not answer. ``kind`` is timeout, provider, configuration or limit."""

    def __init__(self, kind: str, message: str, *, execution_time: float) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.execution_time = execution_time


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
        self._agents: dict[tuple[Any, ...], Agent[None, str]] = {}

    def _agent(self, spec: AgentRecord) -> Agent[None, str]:
        key = (spec.id, spec.updated_at, spec.model)
        agent = self._agents.get(key)
        if agent is None:
            if len(self._agents) > 1024:
                self._agents.clear()
            settings: ModelSettings = {}
            for name in ("temperature", "max_tokens"):
                if spec.model_settings.get(name) is not None:
                    settings[name] = spec.model_settings[name]
            agent = Agent(
                self.models.get(spec.model),
                instructions=spec.instructions or None,
                model_settings=settings or None,
                tools=[TOOLS[name] for name in spec.tools if name in TOOLS],
                defer_model_check=True,
                name=spec.name,
            )
            self._agents[key] = agent
        return agent

    def _handler(
        self, on_event: EventSink, deltas: list[str]
    ) -> Callable[[RunContext[None], Any], Awaitable[None]]:
        limit = self.tool_result_chars

        async def handle(_ctx: RunContext[None], stream: Any) -> None:
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
                if text:
                    deltas.append(text)
                    await on_event(TurnEvent("delta", {"delta": text}))

        return handle

    async def run(
        self,
        spec: AgentRecord,
        prompt: str,
        history: Sequence[MessageRecord],
        *,
        on_event: EventSink | None = None,
    ) -> RunOutcome:
        """One run. With ``on_event`` the model is streamed and every text piece, tool call
        and tool result is handed to it as it happens; the outcome's text is then exactly the
        streamed pieces joined."""
        started = time.perf_counter()
        deltas: list[str] = []

        def failure(kind: str, message: str) -> AgentFailure:
            return AgentFailure(kind, message, execution_time=time.perf_counter() - started)

        try:
            agent = self._agent(spec)
            result = await agent.run(
                prompt,
                message_history=to_model_history(history) or None,
                usage_limits=UsageLimits(
                    request_limit=self.request_limit,
                    output_tokens_limit=self.max_output_tokens,
                    total_tokens_limit=self.max_total_tokens,
                ),
                timeout=self.timeout_seconds,
                event_stream_handler=None if on_event is None else self._handler(on_event, deltas),
            )
        except TimeoutError:
            raise failure(
                "timeout", f"the agent did not answer within {self.timeout_seconds:g} s"
            ) from None
        except UsageLimitExceeded as exc:
            raise failure("limit", f"the agent run hit a usage limit: {exc.message}") from None
        except ModelHTTPError as exc:
            raise failure(
                "provider",
                f"the model provider answered HTTP {exc.status_code} for {exc.model_name}",
            ) from None
        except ModelAPIError as exc:
            raise failure("provider", f"the model provider failed: {exc.message}") from None
        except UnexpectedModelBehavior as exc:
            raise failure("provider", f"the model misbehaved: {exc.message}") from None
        except (UserError, AgentRunError) as exc:
            raise failure("configuration", f"the agent cannot run: {exc}") from None
        except Exception:
            # a failed run must still be recorded as one, never become a half-written turn
            log.exception("agent %s failed unexpectedly", spec.id)
            raise failure("internal", "the agent failed unexpectedly; see the server log") from None
        usage = result.usage
        model_name = spec.model
        output = "".join(deltas) if deltas else result.output
        return RunOutcome(
            output=output,
            model_name=model_name,
            input_tokens=usage.input_tokens or 0,
            output_tokens=usage.output_tokens or 0,
            cost=_cost(usage),
            execution_time=time.perf_counter() - started,
            tool_calls=tuple(tool_calls_of(result.new_messages(), limit=self.tool_result_chars)),
        )


def _cost(usage: Any) -> Decimal | None:
    cost = getattr(usage, "cost", None)
    return None if cost is None else Decimal(cost)
