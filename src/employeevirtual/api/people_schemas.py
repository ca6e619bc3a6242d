"""Request and response bodies of people's data: search, export, erasure, audit trail."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from employeevirtual.stores.records import MessageType
from employeevirtual.stores.sql.erasure_jobs import ErasureStatus, SharedAgents
from employeevirtual.stores.sql.export_jobs import ExportStatus
from employeevirtual.stores.sql.search import SearchHitKind

__all__ = [
    "AdminErasureIn",
    "AuditEntryOut",
    "AuditPage",
    "ErasureIn",
    "ErasureOut",
    "ExportOut",
    "SearchHitOut",
    "SearchPageOut",
]


class SearchHitOut(BaseModel):
    kind: SearchHitKind = Field(description="a message's text matched, or a conversation's title")
    conversation_id: UUID
    message_id: UUID | None = Field(description="the matching message (kind 'message')")
    seq: int | None = Field(description="the message's seq: open the history with before=seq+1")
    message_type: MessageType | None
    agent_id: UUID | None
    created_at: datetime
    title: str | None
    snippet: str = Field(description="text around the match, plain (no markup)")
    highlights: list[tuple[int, int]] = Field(
        description="[start, end) character offsets of the matched words in snippet"
    )
    score: float = Field(description="engine relevance, higher is better (comparable per query)")


class SearchPageOut(BaseModel):
    items: list[SearchHitOut]
    next_cursor: str | None


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErasureIn(_Request):
    password: str = Field(max_length=1024, description="the account's password, to confirm")
    shared_agents: SharedAgents = Field(
        default="transfer",
        description="what happens to the caller's shared agents: handed to an admin, or deleted",
    )


class AdminErasureIn(_Request):
    shared_agents: SharedAgents = "transfer"


class ErasureOut(BaseModel):
    id: UUID = Field(description="the erasure's tombstone id")
    status: ErasureStatus
    step: str
    created_at: datetime
    completed_at: datetime | None


class ExportOut(BaseModel):
    id: UUID
    user_id: UUID
    status: ExportStatus
    created_at: datetime
    completed_at: datetime | None
    expires_at: datetime | None
    size_bytes: int | None
    error: str | None
    download_url: str | None


class AuditEntryOut(BaseModel):
    id: UUID
    actor_id: UUID | None
    action: str
    target_type: str | None
    target_id: str | None
    details: dict[str, Any] | None
    client_ip: str | None
    created_at: datetime


class AuditPage(BaseModel):
    items: list[AuditEntryOut]
    next_cursor: str | None
