"""Request and response bodies. Requests forbid unknown fields: a client can never set ids,
owners, counters, roles or timestamps by adding them to a body."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, Self
from uuid import UUID

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    computed_field,
    field_validator,
)

from employeevirtual.chat.responses import ChatOut, FeedbackView, MessageOut, SourceOut, UsageOut
from employeevirtual.stores.records import ConversationStatus, UserRole, Visibility

__all__ = [
    "AgentIn",
    "AgentOut",
    "AgentPatch",
    "ChatIn",
    "ChatOut",
    "ConversationOut",
    "ConversationPage",
    "ConversationPatch",
    "FeedbackView",
    "FromRecord",
    "HistoryOut",
    "MessageEdit",
    "MessageOut",
    "ModelSettingsIn",
    "RegisterIn",
    "Request",
    "SignupOut",
    "SourceOut",
    "TokenOut",
    "UsageOut",
    "UserOut",
]

Email = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, to_lower=True, max_length=320, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$"
    ),
]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RegisterIn(Request):
    email: Email
    # length and blocklist rules are the password policy's (one 422 listing every problem)
    password: Annotated[str, Field(max_length=1024)]
    name: Name


class SignupOut(BaseModel):
    allowed: bool = Field(
        description="whether POST /api/auth/register accepts new accounts (EV_ALLOW_SIGNUP)"
    )


class FromRecord(BaseModel):
    """A response read straight off a store record's attributes."""

    model_config = ConfigDict(from_attributes=True)

    @classmethod
    def of(cls, record: object) -> Self:
        return cls.model_validate(record)


class UserOut(FromRecord):
    id: UUID
    email: str
    name: str
    role: UserRole
    is_active: bool
    created_at: datetime


class TokenOut(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_at: datetime


class ModelSettingsIn(Request):
    temperature: Annotated[float, Field(ge=0.0, le=2.0)] | None = None
    max_tokens: Annotated[int, Field(ge=1, le=200_000)] | None = None


class AgentMemoryIn(Request):
    enabled: bool = Field(
        default=True, description="keep memories about the person and conversation summaries"
    )
    shared: bool = Field(
        default=True,
        description="share memories across this agent's conversations with the same person "
        "(false: each conversation keeps its own)",
    )


class AgentIn(Request):
    name: Name
    description: Annotated[str, Field(max_length=2000)] | None = None
    instructions: str = ""
    model: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    model_settings: ModelSettingsIn = ModelSettingsIn()
    tools: list[str] = []
    knowledge_base_ids: list[UUID] = Field(
        default=[], description="knowledge bases the agent may search: yours or shared ones"
    )
    delegate_ids: list[UUID] = Field(
        default=[],
        max_length=32,
        description="agents this one may ask (each a tool taking a task) or hand the "
        "conversation to: yours or shared ones; a cycle is refused",
    )
    visibility: Visibility = "private"
    memory: AgentMemoryIn = AgentMemoryIn()


class AgentPatch(Request):
    name: Name | None = None
    description: Annotated[str, Field(max_length=2000)] | None = None
    instructions: str | None = None
    model: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    model_settings: ModelSettingsIn | None = None
    tools: list[str] | None = None
    knowledge_base_ids: list[UUID] | None = None
    delegate_ids: Annotated[list[UUID], Field(max_length=32)] | None = None
    visibility: Visibility | None = None
    memory: AgentMemoryIn | None = None


class AgentOut(FromRecord):
    id: UUID
    user_id: UUID
    name: str
    description: str | None
    instructions: str
    model: str
    model_settings: dict[str, Any]
    tools: list[str]
    knowledge_base_ids: list[UUID]
    delegate_ids: list[UUID]
    visibility: Visibility
    memory: AgentMemoryIn
    created_at: datetime
    updated_at: datetime | None

    @field_validator("memory", mode="before")
    @classmethod
    def _memory_defaults(cls, value: Any) -> Any:
        return {"enabled": True, "shared": True, **(value or {})}


class ChatIn(Request):
    message: str
    agent_id: UUID | None = None
    conversation_id: UUID | None = None


class MessageEdit(Request):
    content: str


class ConversationOut(FromRecord):
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
    total_cost: float
    avg_response_time: float
    synced_seq: int = Field(exclude=True)
    last_error: str | None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def needs_sync(self) -> bool:
        """MongoDB does not hold every message yet (the relay owes it some)."""
        return self.synced_seq < self.message_count


class ConversationPage(BaseModel):
    items: list[ConversationOut]
    next_cursor: str | None


class ConversationPatch(Request):
    title: Name | None = None
    status: ConversationStatus | None = None


class HistoryOut(BaseModel):
    conversation_id: UUID
    messages: list[MessageOut]
    next_before: str | None = Field(description="pass as `before` for the previous page")
    source: Literal["mongodb", "sql"]
