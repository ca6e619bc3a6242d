"""Request and response bodies of the knowledge routes (read off store records)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import BaseModel, Field, StringConstraints

from employeevirtual.api.schemas import FromRecord, Request, SourceOut
from employeevirtual.stores.records import DocumentStatus, Visibility

__all__ = [
    "DocumentOut",
    "DocumentPage",
    "KnowledgeBaseIn",
    "KnowledgeBaseOut",
    "KnowledgeBasePage",
    "KnowledgeBasePatch",
    "SearchIn",
    "SearchOut",
    "SourceOut",
]

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


class KnowledgeBaseIn(Request):
    name: Name
    description: Annotated[str, Field(max_length=2000)] | None = None
    visibility: Visibility = "private"


class KnowledgeBasePatch(Request):
    name: Name | None = None
    description: Annotated[str, Field(max_length=2000)] | None = None
    visibility: Visibility | None = None


class KnowledgeBaseOut(FromRecord):
    id: UUID
    user_id: UUID
    name: str
    description: str | None
    visibility: Visibility
    document_count: int
    created_at: datetime
    updated_at: datetime | None


class KnowledgeBasePage(BaseModel):
    items: list[KnowledgeBaseOut]
    next_cursor: str | None


class DocumentOut(FromRecord):
    id: UUID
    base_id: UUID
    user_id: UUID
    title: str
    filename: str
    kind: str
    content_type: str
    size_bytes: int
    sha256: str
    status: DocumentStatus
    error: str | None = Field(description="why the document failed, when it did")
    pages: int | None
    chars: int | None
    chunks_total: int
    chunks_done: int
    embedding_model: str | None
    created_at: datetime
    updated_at: datetime | None
    ready_at: datetime | None


class DocumentPage(BaseModel):
    items: list[DocumentOut]
    next_cursor: str | None


class SearchIn(Request):
    query: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=1000)]
    mode: Literal["hybrid", "lexical", "vector"] = "hybrid"
    limit: Annotated[int, Field(ge=1, le=50)] = 5


class SearchOut(BaseModel):
    query: str
    mode: str
    results: list[SourceOut]
