"""The MCP service from the settings."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from employeevirtual.mcp.connect import Connections
from employeevirtual.mcp.network import NetworkPolicy, StdioPolicy
from employeevirtual.mcp.secrets import SecretBox
from employeevirtual.mcp.service import McpLimits, McpService
from employeevirtual.settings import Settings

__all__ = ["open_mcp"]


def open_mcp(settings: Settings, engine: AsyncEngine) -> McpService:
    connections = Connections(
        network=NetworkPolicy.of(
            settings.mcp_allowed_hosts, allow_private=settings.mcp_allow_private
        ),
        stdio=StdioPolicy.of(settings.mcp_stdio_commands),
        secrets=SecretBox(settings.secrets_key),
        connect_timeout=settings.mcp_connect_timeout_seconds,
        call_timeout=settings.mcp_call_timeout_seconds,
        start_timeout=settings.mcp_start_timeout_seconds,
    )
    return McpService(
        engine=engine,
        connections=connections,
        limits=McpLimits(
            max_servers=settings.mcp_max_servers,
            max_tools_per_server=settings.mcp_max_tools_per_server,
            max_calls_per_turn=settings.mcp_max_calls_per_turn,
            result_chars=settings.mcp_result_max_chars,
            call_timeout=settings.mcp_call_timeout_seconds,
            connect_timeout=settings.mcp_connect_timeout_seconds,
            catalog_seconds=settings.mcp_catalog_seconds,
        ),
    )
