"""Running one agent turn with Pydantic AI: history in, output, usage, cost and time out.

The runner touches no store; the chat service hands it plain records and stores the outcome.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from pydantic_ai import Agent, UsageLimits
from pydantic_ai.exceptions import (
    AgentRunError,
    ModelAPIError,
    ModelHTTPError,
    UnexpectedModelBehavior,
    UsageLimitExceeded,
    UserError,
)
from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelResponse,
    TextPart,
    UserPromptPart,
)
from pydantic_ai.settings import ModelSettings

from employeevirtual.agents.models import ModelRegistry
from employeevirtual.agents.tools import TOOLS
from employeevirtual.stores.records import AgentRecord, MessageRecord, TurnUsage

__all__ = ["AgentFailure", "AgentRunner", "RunOutcome"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RunOutcome:
    output: str
    usage: TurnUsage


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
            history.append(ModelResponse(parts=[TextPart(m.content)], timestamp=m.created_at))
    return history


class AgentRunner:
    def __init__(
        self,
        models: ModelRegistry,
        *,
        timeout_seconds: float,
        max_output_tokens: int | None = None,
        max_total_tokens: int | None = None,
        request_limit: int = 10,
    ) -> None:
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

    async def run(
        self, spec: AgentRecord, prompt: str, history: Sequence[MessageRecord]
    ) -> RunOutcome:
        started = time.perf_counter()

        def failure(kind: str, message: str) -> AgentFailure:
            usage = TurnUsage.measured(
                model=spec.model, execution_time=time.perf_counter() - started
            )
            return AgentFailure(kind, message, usage=usage)

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
        return RunOutcome(
            output=result.output,
            usage=TurnUsage.measured(
                model=spec.model,
                input_tokens=usage.input_tokens or 0,
                output_tokens=usage.output_tokens or 0,
                cost=_cost(usage),
                execution_time=time.perf_counter() - started,
            ),
        )


def _cost(usage: Any) -> Decimal | None:
    cost = getattr(usage, "cost", None)
    return None if cost is None else Decimal(cost)
