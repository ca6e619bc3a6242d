"""Tools from MCP servers (issue 13): secrets at rest, outbound rules, bounds on every call."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, Field, SecretStr, field_validator
from pydantic_settings import NoDecode

from employeevirtual.settings.lists import split_list

__all__ = ["McpSettings"]


class McpSettings(BaseModel):
    secrets_key: SecretStr | None = Field(
        default=None,
        description="Fernet key(s), comma-separated, newest first, that encrypt MCP server "
        "secrets at rest; unset: servers with secrets cannot be registered or used",
    )
    mcp_allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default=[],
        description="host or host:port entries an MCP server URL may name (comma-separated); "
        "empty: no HTTP MCP server may be registered",
    )
    mcp_allow_private: bool = Field(
        default=False, description="let MCP URLs reach loopback/private/link-local addresses"
    )
    mcp_stdio_commands: Annotated[list[str], NoDecode] = Field(
        default=[],
        description="the exact command lines (JSON list or ';'-separated) an admin may "
        "register as a stdio MCP server; empty: no stdio server",
    )
    mcp_call_timeout_seconds: float = Field(
        default=30.0, gt=0, le=600, description="one MCP tool call, connection included"
    )
    mcp_connect_timeout_seconds: float = Field(
        default=5.0, gt=0, le=60, description="an MCP server's connection and handshake"
    )
    mcp_start_timeout_seconds: float = Field(
        default=30.0, gt=0, le=600, description="a stdio server's child starting and answering"
    )
    mcp_max_calls_per_turn: int = Field(default=8, ge=1, le=100)
    mcp_result_max_chars: int = Field(
        default=16_000, ge=256, description="an MCP result is cut here before the model sees it"
    )
    mcp_max_servers: int = Field(default=50, ge=1)
    mcp_max_tools_per_server: int = Field(default=200, ge=1)
    mcp_catalog_seconds: float = Field(
        default=5.0, ge=0, description="how long a process keeps the server list it read"
    )

    @field_validator("mcp_allowed_hosts", mode="before")
    @classmethod
    def _split_mcp_hosts(cls, value: Any) -> Any:
        return split_list(value, ",")

    @field_validator("mcp_stdio_commands", mode="before")
    @classmethod
    def _split_mcp_commands(cls, value: Any) -> Any:
        return split_list(value, ";")
