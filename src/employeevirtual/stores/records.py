"""Plain records the stores hand to the service: no ORM objects, no driver types."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal
from uuid import UUID

__all__ = [
    "AgentRecord",
    "ApiKeyRecord",
    "BudgetRecord",
    "BudgetScope",
    "ConversationRecord",
    "ConversationStatus",
    "DocumentRecord",
    "DocumentStatus",
    "FeedbackRecord",
    "KnowledgeBaseRecord",
    "MessageRecord",
    "MessageType",
    "Rating",
    "TurnUsage",
    "UserRecord",
    "UserRole",
    "Visibility",
]

# The vocabularies the API shows and accepts; the records carry the same types.
UserRole = Literal["admin", "user"]
Visibility = Literal["private", "shared"]
ConversationStatus = Literal["active", "archived"]
MessageType = Literal["user", "agent", "error"]
DocumentStatus = Literal["queued", "processing", "ready", "failed"]
BudgetScope = Literal["user", "agent"]
Rating = Literal["up", "down"]


@dataclass(frozen=True, slots=True)
class TurnUsage:
    """One agent run's usage, as the runner measured it and both stores keep it: the reply's
    metadata, the SQL counters and the MongoDB counters are all written from this value."""

    model: str
    input_tokens: int
    output_tokens: int
    cost: float | None  # USD; None when the model has no known price
    execution_time: float  # seconds, to the microsecond

    @classmethod
    def measured(
        cls,
        *,
        model: str,
        execution_time: float,
        input_tokens: int = 0,
        output_tokens: int = 0,
        cost: Decimal | None = None,
    ) -> TurnUsage:
        return cls(
            model=model,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cost=None if cost is None else float(cost),
            execution_time=round(execution_time, 6),
        )

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


@dataclass(frozen=True, slots=True)
class UserRecord:
    id: UUID
    email: str
    name: str
    role: UserRole
    is_active: bool
    created_at: datetime
    password_hash: str = field(repr=False, default="")

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


@dataclass(frozen=True, slots=True)
class AgentRecord:
    id: UUID
    user_id: UUID
    name: str
    description: str | None
    instructions: str
    model: str
    model_settings: dict[str, Any]
    tools: list[str]
    visibility: Visibility
    created_at: datetime
    updated_at: datetime | None
    deleted_at: datetime | None = None
    knowledge_base_ids: list[UUID] = field(default_factory=list)
    delegate_ids: list[UUID] = field(default_factory=list)  # agents it may ask (issue 13)
    memory: dict[str, Any] = field(default_factory=dict)  # {"enabled", "shared"} (issue 18)

    @property
    def memory_enabled(self) -> bool:
        """The agent keeps memories and conversation summaries (the default)."""
        return self.memory.get("enabled", True) is not False

    @property
    def memory_shared(self) -> bool:
        """Memories are shared by the agent's conversations with the same person (the default),
        rather than kept per conversation."""
        return self.memory.get("shared", True) is not False


@dataclass(frozen=True, slots=True)
class ConversationRecord:
    id: UUID
    user_id: UUID
    agent_id: UUID
    title: str | None
    status: ConversationStatus
    session_id: str | None
    metadata: dict[str, Any]
    created_at: datetime
    updated_at: datetime | None
    last_message_at: datetime | None
    message_count: int
    total_tokens: int
    total_cost: Decimal
    total_response_time: Decimal
    agent_runs: int
    synced_seq: int
    last_error: str | None

    @property
    def avg_response_time(self) -> float:
        return float(self.total_response_time) / self.agent_runs if self.agent_runs else 0.0


@dataclass(frozen=True, slots=True)
class MessageRecord:
    id: UUID
    conversation_id: UUID
    seq: int
    user_id: UUID
    agent_id: UUID | None
    content: str
    message_type: MessageType
    metadata: dict[str, Any]
    created_at: datetime
    # the owner's rating of an agent message ({rating, comment, updated_at}), when given
    feedback: dict[str, Any] | None = None
    is_edited: bool = False  # a user's message that replaced an earlier one (PATCH … /messages)
    edited_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class ApiKeyRecord:
    id: UUID
    user_id: UUID
    name: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


@dataclass(frozen=True, slots=True)
class KnowledgeBaseRecord:
    id: UUID
    user_id: UUID
    name: str
    description: str | None
    visibility: Visibility
    created_at: datetime
    updated_at: datetime | None
    document_count: int = 0


@dataclass(frozen=True, slots=True)
class DocumentRecord:
    id: UUID
    base_id: UUID
    user_id: UUID
    title: str
    filename: str
    kind: str
    content_type: str
    size_bytes: int
    sha256: str
    storage_key: str
    status: DocumentStatus
    error: str | None
    pages: int | None
    chars: int | None
    chunks_total: int
    chunks_done: int
    embedding_model: str | None
    attempts: int
    created_at: datetime
    updated_at: datetime | None
    ready_at: datetime | None


@dataclass(frozen=True, slots=True)
class BudgetRecord:
    """A monthly budget and its counter: ``used_*`` count the month ``period`` (YYYY-MM)."""

    id: UUID
    scope: BudgetScope
    scope_id: UUID
    max_cost: Decimal | None
    max_tokens: int | None
    period: str
    used_cost: Decimal
    used_tokens: int
    warned_level: int
    created_at: datetime | None = None  # not read on the turn's path
    updated_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class FeedbackRecord:
    message_id: UUID
    conversation_id: UUID
    user_id: UUID
    rating: Rating
    comment: str | None
    created_at: datetime
    updated_at: datetime

    def view(self) -> dict[str, Any]:
        """As history shows it and MongoDB keeps it (``chat_messages.feedback``)."""
        return {"rating": self.rating, "comment": self.comment, "updated_at": self.updated_at}
