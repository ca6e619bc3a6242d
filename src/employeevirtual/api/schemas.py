"""Request and response bodies. Requests forbid unknown fields: a client can never set ids,
owners, counters, roles or timestamps by adding them to a body."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, Self
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from employeevirtual.stores.records import (
    ConversationRecord,
    MessageRecord,
)

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
    role: str
    is_active: bool
    created_at: datetime


class TokenOut(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_at: datetime


class ModelSettingsIn(Request):
    temperature: Annotated[float, Field(ge=0.0, le=2.0)] | None = None
    max_tokens: Annotated[int, Field(ge=1, le=200_000)] | None = None


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
    visibility: Literal["private", "shared"] = "private"


class AgentPatch(Request):
    name: Name | None = None
    description: Annotated[str, Field(max_length=2000)] | None = None
    instructions: str | None = None
    model: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    model_settings: ModelSettingsIn | None = None
    tools: list[str] | None = None
    knowledge_base_ids: list[UUID] | None = None
    visibility: Literal["private", "shared"] | None = None


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
    visibility: str
    created_at: datetime
    updated_at: datetime | None


class ChatIn(Request):
    message: str
    agent_id: UUID | None = None
    conversation_id: UUID | None = None


class SourceOut(BaseModel):
    """A passage an answer was given from (knowledge bases)."""

    document_id: UUID
    base_id: UUID
    title: str
    chunk_id: str
    heading: str
    score: float
    passage: str


class FeedbackView(BaseModel):
    rating: Literal["up", "down"]
    comment: str | None = None
    updated_at: datetime


class MessageEdit(Request):
    content: str


class MessageOut(BaseModel):
    id: UUID
    conversation_id: UUID
    seq: int
    content: str
    message_type: str
    user_id: UUID
    agent_id: UUID | None
    metadata: dict[str, Any]
    timestamp: datetime
    sources: list[SourceOut] = Field(
        default=[], description="the passages this answer was given from (knowledge)"
    )
    feedback: FeedbackView | None = Field(
        default=None, description="the owner's rating of an agent message, if given"
    )
    is_edited: bool = False
    edited_at: datetime | None = None

    @classmethod
    def of(cls, message: MessageRecord) -> MessageOut:
        return cls(
            id=message.id,
            conversation_id=message.conversation_id,
            seq=message.seq,
            content=message.content,
            message_type=message.message_type,
            user_id=message.user_id,
            agent_id=message.agent_id,
            metadata={**message.metadata, "timestamp": message.created_at},
            timestamp=message.created_at,
            sources=[SourceOut.model_validate(s) for s in message.metadata.get("sources") or []],
            feedback=None if message.feedback is None else FeedbackView(**message.feedback),
            is_edited=message.is_edited,
            edited_at=message.edited_at,
        )


class UsageOut(BaseModel):
    input_tokens: int
    output_tokens: int
    total_tokens: int
    cost: float | None


class ChatOut(BaseModel):
    conversation_id: UUID
    user_message: MessageOut
    agent_message: MessageOut
    usage: UsageOut
    sources: list[SourceOut] = Field(
        default=[], description="the passages the answer was given from (knowledge)"
    )


class ConversationOut(BaseModel):
    id: UUID
    user_id: UUID
    agent_id: UUID
    title: str | None
    status: str
    session_id: str | None
    metadata: dict[str, Any]
    created_at: datetime
    updated_at: datetime | None
    last_message_at: datetime | None
    message_count: int
    total_tokens: int
    total_cost: float
    avg_response_time: float
    needs_sync: bool
    last_error: str | None

    @classmethod
    def of(cls, c: ConversationRecord) -> ConversationOut:
        return cls(
            id=c.id,
            user_id=c.user_id,
            agent_id=c.agent_id,
            title=c.title,
            status=c.status,
            session_id=c.session_id,
            metadata=c.metadata,
            created_at=c.created_at,
            updated_at=c.updated_at,
            last_message_at=c.last_message_at,
            message_count=c.message_count,
            total_tokens=c.total_tokens,
            total_cost=float(c.total_cost),
            avg_response_time=c.avg_response_time,
            needs_sync=c.synced_seq < c.message_count,
            last_error=c.last_error,
        )


class ConversationPage(BaseModel):
    items: list[ConversationOut]
    next_cursor: str | None


class ConversationPatch(Request):
    title: Name | None = None
    status: Literal["active", "archived"] | None = None


class HistoryOut(BaseModel):
    conversation_id: UUID
    messages: list[MessageOut]
    next_before: str | None = Field(description="pass as `before` for the previous page")
    source: Literal["mongodb", "sql"]


class ErrorOut(BaseModel):
    detail: str
