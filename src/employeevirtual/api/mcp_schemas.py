"""Request and response bodies of the MCP server routes. Secrets go in, only their names
come out."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, Self
from uuid import UUID

from pydantic import BaseModel, Field, StringConstraints, field_validator, model_validator

from employeevirtual.api.schemas import Request
from employeevirtual.stores.sql.mcp_servers import McpServerRecord

__all__ = ["McpServerIn", "McpServerOut", "McpServerPage", "McpServerPatch", "McpToolOut"]

ServerName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,39}$")]
Text = Annotated[str, Field(max_length=500)]
Arg = Annotated[str, Field(min_length=1, max_length=500)]
SecretName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z][A-Za-z0-9_-]{0,99}$")]
Secret = Annotated[str, Field(max_length=4000)]
Secrets = Annotated[dict[SecretName, Secret], Field(max_length=20)]

_MAX_SECRET_CHARS = 4000


def _check_secrets(values: dict[str, str] | None) -> dict[str, str] | None:
    if values and sum(len(k) + len(v) for k, v in values.items()) > _MAX_SECRET_CHARS:
        raise ValueError(f"secrets: at most {_MAX_SECRET_CHARS} characters in all")
    if values and any("\n" in v or "\r" in v for v in values.values()):
        raise ValueError("secrets: a value may not hold a line break")
    return values


class McpServerIn(Request):
    name: ServerName = Field(description="tools are named name/tool; cannot change later")
    description: Text | None = None
    transport: Literal["http", "stdio"]
    url: Annotated[str, Field(max_length=2000)] | None = Field(
        default=None, description="http: the Streamable HTTP endpoint (EV_MCP_ALLOWED_HOSTS)"
    )
    command: Annotated[list[Arg], Field(min_length=1, max_length=50)] | None = Field(
        default=None, description="stdio: the command and its arguments (EV_MCP_STDIO_COMMANDS)"
    )
    headers: Secrets | None = Field(default=None, description="http: sent with every request")
    env: Secrets | None = Field(default=None, description="stdio: the child's environment")
    available_to: Annotated[list[UUID], Field(max_length=1000)] | None = Field(
        default=None, description="user ids who may use it; null: every user"
    )

    _secrets = field_validator("headers", "env")(_check_secrets)

    @model_validator(mode="after")
    def _one_transport(self) -> Self:
        if self.transport == "http" and (self.url is None or self.command or self.env):
            raise ValueError("an http server takes a url (and headers), not a command or env")
        if self.transport == "stdio" and (self.command is None or self.url or self.headers):
            raise ValueError("a stdio server takes a command (and env), not a url or headers")
        return self

    @property
    def secrets(self) -> dict[str, str] | None:
        return self.headers if self.transport == "http" else self.env


class McpServerPatch(Request):
    description: Text | None = None
    url: Annotated[str, Field(max_length=2000)] | None = None
    command: Annotated[list[Arg], Field(min_length=1, max_length=50)] | None = None
    headers: Secrets | None = Field(default=None, description="replaces every header; {}: none")
    env: Secrets | None = Field(default=None, description="replaces the environment; {}: none")
    available_to: Annotated[list[UUID], Field(max_length=1000)] | None = None

    _secrets = field_validator("headers", "env")(_check_secrets)


class McpToolOut(BaseModel):
    name: str = Field(description="server/tool, as an agent's tools name it")
    description: str


class McpServerOut(BaseModel):
    id: UUID
    name: str
    description: str | None
    transport: str
    url: str | None
    command: list[str] | None
    secret_names: list[str] = Field(description="the headers or variables set (values never)")
    available_to: list[UUID] | None
    status: Literal["unknown", "available", "unavailable"]
    status_message: str | None
    refreshed_at: datetime | None
    tools: list[McpToolOut]
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, server: McpServerRecord, *, admin: bool = True) -> Self:
        fields: dict[str, Any] = {
            "id": server.id,
            "name": server.name,
            "description": server.description,
            "transport": server.transport,
            "url": server.url if admin else None,
            "command": list(server.command_line) if admin and server.command_line else None,
            "secret_names": list(server.secret_names) if admin else [],
            "available_to": list(server.available_to)
            if admin and server.available_to is not None
            else None,
            "status": server.status,
            "status_message": server.status_message,
            "refreshed_at": server.refreshed_at,
            "tools": [
                McpToolOut(
                    name=f"{server.name}/{t['name']}", description=t.get("description") or ""
                )
                for t in server.tools
            ],
            "created_at": server.created_at,
            "updated_at": server.updated_at,
        }
        return cls(**fields)


class McpServerPage(BaseModel):
    items: list[McpServerOut]
