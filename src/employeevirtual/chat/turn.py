"""The turn's values: what is asked (``TurnRequest``, with the message rules every entry point
meets), what came of it (``TurnSucceeded`` or ``TurnFailed``: a failed run is recorded, not
raised), and the messages a turn stores."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from employeevirtual.agents.runner import AgentFailure, RunOutcome
from employeevirtual.errors import InvalidInput
from employeevirtual.request_context import current_request_id
from employeevirtual.stores.records import (
    AgentRecord,
    BudgetRecord,
    ConversationRecord,
    MessageRecord,
    MessageType,
    TurnUsage,
)

__all__ = [
    "OpenedTurn",
    "TurnFailed",
    "TurnOutcome",
    "TurnRequest",
    "TurnSucceeded",
    "agent_reply",
    "checked_edit",
    "now_ms",
    "outcome_of",
    "request_tag",
    "user_message",
]


def now_ms() -> datetime:
    """Aware UTC, truncated to milliseconds: what MongoDB keeps, so both stores agree."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


@dataclass(frozen=True, slots=True)
class TurnRequest:
    message: str
    agent_id: UUID | None = None
    conversation_id: UUID | None = None
    # earlier messages the model is given when the turn starts a new conversation (the OpenAI
    # door's resent history); they are not stored
    context: tuple[MessageRecord, ...] = ()
    request_id: str | None = None  # goes with the run into its analytics and system logs

    @classmethod
    def checked(
        cls,
        message: str | None,
        *,
        agent_id: UUID | None,
        conversation_id: UUID | None,
        max_chars: int,
        context: Sequence[MessageRecord] = (),
        request_id: str | None = None,
    ) -> TurnRequest:
        """The request, or InvalidInput (422) saying what to fix."""
        if message is None or not message.strip():
            raise InvalidInput("message is required and cannot be empty or only whitespace")
        if len(message) > max_chars:
            raise InvalidInput(f"message is {len(message)} characters; the limit is {max_chars}")
        if agent_id is None and conversation_id is None:
            raise InvalidInput("give agent_id to start a conversation, or conversation_id")
        return cls(message, agent_id, conversation_id, tuple(context), request_id)


def checked_edit(content: str, *, max_chars: int) -> str:
    """An edited message's text, or InvalidInput (422) saying what to fix."""
    if not content.strip():
        raise InvalidInput("content cannot be empty or only whitespace")
    if len(content) > max_chars:
        raise InvalidInput(f"content is {len(content)} characters; the limit is {max_chars}")
    return content


@dataclass(frozen=True, slots=True)
class TurnSucceeded:
    conversation: ConversationRecord
    user_message: MessageRecord
    reply: MessageRecord  # the agent's answer
    usage: TurnUsage
    # the messages and the conversation document (the run's chat_analytics document follows
    # with the next sync-ack flush)
    stored_in_mongodb: bool = False


@dataclass(frozen=True, slots=True)
class TurnFailed:
    """The agent failed; the user's message and the failure are committed all the same."""

    conversation: ConversationRecord
    user_message: MessageRecord
    reply: MessageRecord  # the failure, recorded as an ``error`` message
    usage: TurnUsage  # what the failed run cost (its time)
    kind: str  # timeout, provider, configuration, limit, internal
    request_id: str | None = None  # what to quote: the details are in the server log
    stored_in_mongodb: bool = False

    @property
    def message(self) -> str:
        return self.reply.content

    @property
    def status_code(self) -> int:
        # a usage limit is the run's budget (settings), not a provider fault: 422
        return {"timeout": 504, "limit": 422}.get(self.kind, 502)


TurnOutcome = TurnSucceeded | TurnFailed


def outcome_of(
    record: ConversationRecord,
    asked: MessageRecord,
    reply: MessageRecord,
    run: RunOutcome | AgentFailure,
) -> TurnOutcome:
    """What the committed turn answers: success, or the recorded failure as a value."""
    if isinstance(run, AgentFailure):
        return TurnFailed(
            record, asked, reply, run.usage, kind=run.kind, request_id=current_request_id()
        )
    return TurnSucceeded(record, asked, reply, run.usage)


@dataclass(frozen=True, slots=True)
class OpenedTurn:
    """A turn whose user message is committed and whose agent has not answered yet."""

    conversation: ConversationRecord
    agent: AgentRecord
    history: list[MessageRecord]  # the context before the user's message
    user_message: MessageRecord
    model_history: list[MessageRecord]  # what the model is given (history, or a new one's context)
    reply_metadata: dict[str, Any] = field(default_factory=dict)  # e.g. what the reply replaces
    # committed when the turn opened, written to MongoDB with the reply (one write, not two)
    pending: list[MessageRecord] = field(default_factory=list)
    created: bool = False  # the turn created the conversation
    # False: regenerate/edit, whose window is not [history, user], or a row read back past it
    advance_cache: bool = True
    budgets: list[BudgetRecord] = field(default_factory=list)  # charged when the turn closes
    started: float = 0.0  # perf_counter at open (the turn's latency metric)
    request_id: str | None = None


def request_tag(request_id: str | None) -> dict[str, str]:
    """The request id in the reply's metadata (it reaches the run's analytics)."""
    return {} if request_id is None else {"request_id": request_id}


def user_message(user_id: UUID, conversation_id: UUID, content: str) -> MessageRecord:
    """The user's message; ``seq`` is set when it is committed."""
    return MessageRecord(
        id=uuid.uuid4(),
        conversation_id=conversation_id,
        seq=0,
        user_id=user_id,
        agent_id=None,
        content=content,
        message_type="user",
        metadata={},
        created_at=now_ms(),
    )


def agent_reply(
    user_id: UUID,
    agent: AgentRecord,
    conversation_id: UUID,
    run: RunOutcome | AgentFailure,
    *,
    extra: dict[str, Any] | None = None,
) -> MessageRecord:
    """The agent's answer, or the failure as an ``error`` message, with the run's usage (and
    tool calls) in its metadata; ``seq`` is set when it is committed."""
    usage = run.usage
    metadata: dict[str, Any]
    message_type: MessageType
    if isinstance(run, RunOutcome) and run.agent is not None:
        agent = run.agent  # handed over within the turn: the answer is the new agent's
    if isinstance(run, RunOutcome):
        content, message_type = run.output, "agent"
        metadata = {
            "model_used": usage.model,
            "execution_time": usage.execution_time,
            "tokens_used": usage.total_tokens,
            "input_tokens": usage.input_tokens,
            "output_tokens": usage.output_tokens,
            "cost": usage.cost,
        }
        if run.tool_calls:
            metadata["tool_calls"] = list(run.tool_calls)
        if run.knowledge_searches:
            metadata["knowledge_searches"] = list(run.knowledge_searches)
            metadata["sources"] = list(run.sources)
        if run.delegations:  # who was asked, what, what it answered, its own usage
            metadata["delegations"] = list(run.delegations)
            metadata["delegated_runs"] = len(run.delegations)
    else:
        content, message_type = run.message, "error"
        metadata = {
            "model_used": usage.model,
            "error": run.kind,
            "execution_time": usage.execution_time,
        }
    metadata["agent_name"] = agent.name
    if extra:
        metadata.update(extra)
    return MessageRecord(
        id=uuid.uuid4(),
        conversation_id=conversation_id,
        seq=0,
        user_id=user_id,
        agent_id=agent.id,
        content=content,
        message_type=message_type,
        metadata=metadata,
        created_at=now_ms(),
    )
