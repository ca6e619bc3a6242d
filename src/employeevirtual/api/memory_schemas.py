"""Request and response models of ``/api/memories`` (issue 18)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, Field, computed_field

from employeevirtual.api.schemas import FromRecord, Request

__all__ = ["MemoriesDeleted", "MemoryOut", "MemoryPage", "MemoryPatch"]


class MemoryOut(FromRecord):
    id: UUID
    agent_id: UUID
    conversation_id: UUID | None = Field(
        description="set when the agent keeps memories per conversation; null: shared by the "
        "agent's conversations with you"
    )
    content: str
    source_message_id: UUID | None = Field(
        description="the agent message whose `remember` call saved it"
    )
    source_conversation_id: UUID | None
    created_at: datetime
    updated_at: datetime

    @computed_field  # type: ignore[prop-decorator]
    @property
    def scope(self) -> Literal["agent", "conversation"]:
        return "conversation" if self.conversation_id else "agent"


class MemoryPage(BaseModel):
    items: list[MemoryOut]
    next_cursor: str | None


class MemoryPatch(Request):
    content: str = Field(description="the memory's new text")


class MemoriesDeleted(BaseModel):
    deleted: int
