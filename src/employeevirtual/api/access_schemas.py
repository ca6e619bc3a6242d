"""Bodies of the access-control endpoints (API keys, user administration) and the error
body every endpoint documents."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from employeevirtual.api.schemas import FromRecord, Name, Request, UserOut
from employeevirtual.stores.records import UserRole


class ProblemOut(BaseModel):
    """Any 4xx/5xx: ``detail`` says what to fix (a list for request validation errors);
    some errors add fields, e.g. ``problems`` for a refused password."""

    model_config = ConfigDict(extra="allow")
    detail: str | list[Any]


class ApiKeyIn(Request):
    name: Name


class ApiKeyOut(FromRecord):
    id: UUID
    name: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None


class ApiKeyCreated(ApiKeyOut):
    key: Annotated[str, Field(description="the key itself; shown once, store it now")]


class UserPatch(Request):
    role: UserRole | None = None
    is_active: bool | None = None


class UserPage(BaseModel):
    items: list[UserOut]
    next_cursor: str | None
