"""What a turn answers, as the chat layer builds it: the response bodies (read off the stored
records) and the one function that turns an outcome into the response, the same for a first
answer and for the copy kept with its Idempotency-Key."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Self
from uuid import UUID

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, model_validator

from employeevirtual.chat.idempotency import StoredResponse
from employeevirtual.chat.turn import TurnFailed, TurnOutcome, TurnSucceeded
from employeevirtual.stores.records import MessageType, Rating, TurnUsage

__all__ = [
    "ChatOut",
    "FeedbackView",
    "MessageOut",
    "SourceOut",
    "UsageOut",
    "chat_out",
    "failure_body",
    "turn_response",
]


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
    rating: Rating
    comment: str | None = None
    updated_at: datetime


class MessageOut(BaseModel):
    """A message as the seed shows it: ``timestamp`` (the record's ``created_at``) also inside
    ``metadata``."""

    model_config = ConfigDict(from_attributes=True)

    id: UUID
    conversation_id: UUID
    seq: int
    content: str
    message_type: MessageType
    user_id: UUID
    agent_id: UUID | None
    metadata: dict[str, Any]
    timestamp: datetime = Field(validation_alias=AliasChoices("created_at", "timestamp"))
    sources: list[SourceOut] = Field(
        default=[], description="the passages this answer was given from (knowledge)"
    )
    feedback: FeedbackView | None = Field(
        default=None, description="the owner's rating of an agent message, if given"
    )
    is_edited: bool = False
    edited_at: datetime | None = None

    @model_validator(mode="after")
    def _from_metadata(self) -> Self:
        """The sources the answer cites (kept in its metadata), and the timestamp there too."""
        self.sources = [SourceOut.model_validate(s) for s in self.metadata.get("sources") or []]
        self.metadata = {**self.metadata, "timestamp": self.timestamp}
        return self

    @classmethod
    def of(cls, record: object) -> Self:
        return cls.model_validate(record)


class UsageOut(BaseModel):
    input_tokens: int
    output_tokens: int
    total_tokens: int
    cost: float | None

    @classmethod
    def of(cls, usage: TurnUsage) -> UsageOut:
        return cls(
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            total_tokens=usage.total_tokens,
            cost=usage.cost,
        )


class ChatOut(BaseModel):
    conversation_id: UUID
    user_message: MessageOut
    agent_message: MessageOut
    usage: UsageOut
    sources: list[SourceOut] = Field(
        default=[], description="the passages the answer was given from (knowledge)"
    )


def chat_out(outcome: TurnSucceeded) -> ChatOut:
    agent_message = MessageOut.of(outcome.reply)
    return ChatOut(
        conversation_id=outcome.conversation.id,
        user_message=MessageOut.of(outcome.user_message),
        agent_message=agent_message,
        usage=UsageOut.of(outcome.usage),
        sources=agent_message.sources,
    )


def failure_body(outcome: TurnFailed) -> dict[str, str | None]:
    return {
        "detail": outcome.message,
        "conversation_id": str(outcome.conversation.id),
        "request_id": outcome.request_id,
    }


def turn_response(outcome: TurnOutcome) -> StoredResponse:
    """The HTTP answer to a turn: 200 with ``ChatOut``, or the recorded failure's status with
    its message and the conversation it was recorded in."""
    if isinstance(outcome, TurnFailed):
        body = json.dumps(failure_body(outcome), ensure_ascii=False, separators=(",", ":"))
        return StoredResponse(outcome.status_code, body)
    return StoredResponse(200, chat_out(outcome).model_dump_json())
