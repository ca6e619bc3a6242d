"""Bodies of the access-control endpoints (API keys, user administration) and the error
body every endpoint documents."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from employeevirtual.api.schemas import Name, Request, UserOut
from employeevirtual.stores.records import ApiKeyRecord


class ProblemOut(BaseModel):
    """Any 4xx/5xx: ``detail`` says what to fix (a list for request validation errors);
    some errors add fields, e.g. ``problems`` for a refused password."""

    model_config = ConfigDict(extra="allow")
    detail: str | list[Any]


class ApiKeyIn(Request):
    name: Name


class ApiKeyOut(BaseModel):
    id: UUID
    name: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None

    @classmethod
    def of(cls, key: ApiKeyRecord) -> ApiKeyOut:
        return cls(
            id=key.id,
            name=key.name,
            prefix=key.prefix,
            created_at=key.created_at,
            last_used_at=key.last_used_at,
        )


class ApiKeyCreated(ApiKeyOut):
    key: Annotated[str, Field(description="the key itself; shown once, store it now")]


class UserPatch(Request):
    role: Literal["admin", "user"] | None = None
    is_active: bool | None = None


class UserPage(BaseModel):
    items: list[UserOut]
    next_cursor: str | None
