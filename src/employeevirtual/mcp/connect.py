"""How each registered server is reached, through Pydantic AI's ``MCPToolset``.

HTTP (Streamable HTTP): a session per use, over an HTTP client whose every request passes the
network rules (redirects included), with the server's headers. stdio: one kept-alive child per
server (the command re-checked against ``EV_MCP_STDIO_COMMANDS`` at every use), started with a
clean environment (PATH, HOME and the like, plus the server's own variables), never this
process's: the database URLs and keys stay here.

FastMCP and ``pydantic_ai.mcp`` are imported at first use (``Connections.load``, in a thread,
before any time limit starts): they are a large share of the server's start-up, and most
processes never connect to an MCP server.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any
from uuid import UUID

import httpx2

from employeevirtual.mcp.network import GuardedTransport, NetworkPolicy, StdioPolicy
from employeevirtual.mcp.secrets import SecretBox
from employeevirtual.stores.sql.mcp_servers import McpServerRecord

if TYPE_CHECKING:
    from fastmcp.client.transports import StdioTransport
    from pydantic_ai.mcp import MCPToolset

__all__ = ["Connections"]

log = logging.getLogger(__name__)

_CLIENT_MODULES = ("fastmcp", "fastmcp.client.transports", "fastmcp.exceptions", "pydantic_ai.mcp")


def _import_client() -> None:
    for name in _CLIENT_MODULES:
        importlib.import_module(name)


class Connections:
    def __init__(
        self,
        *,
        network: NetworkPolicy,
        stdio: StdioPolicy,
        secrets: SecretBox,
        connect_timeout: float,
        call_timeout: float,
        start_timeout: float,
    ) -> None:
        self.network = network
        self.stdio = stdio
        self.secrets = secrets
        self.connect_timeout = connect_timeout
        self.call_timeout = call_timeout
        self.start_timeout = start_timeout
        self._children: dict[UUID, tuple[Any, StdioTransport]] = {}
        self._clients: dict[UUID, tuple[Any, httpx2.AsyncClient]] = {}
        self._loaded = False

    async def load(self) -> None:
        """Import the MCP client modules (once), off the event loop. Callers await it before
        their time limits start: the import must not count against a server's seconds."""
        if not self._loaded:
            await asyncio.to_thread(_import_client)
            self._loaded = True

    @asynccontextmanager
    async def session(self, server: McpServerRecord) -> AsyncIterator[MCPToolset[Any]]:
        """An open session with ``server``. Raises OutboundRefused (rules), SecretsUnavailable
        (no key), or whatever connecting raised."""
        from fastmcp import Client
        from pydantic_ai.mcp import MCPToolset

        secrets = self.secrets.open(server.sealed_secrets)
        if server.transport == "http":
            assert server.url is not None
            self.network.check_syntax(server.url)
            toolset: MCPToolset[Any] = MCPToolset(
                server.url,
                http_client=self._http_client(server, secrets),
                init_timeout=self.connect_timeout,
                read_timeout=self.call_timeout,
                tool_error_behavior="error",
                cache_tools=False,
                id=f"mcp-{server.name}",
            )
            async with toolset:
                yield toolset
            return
        command, *args = server.command_line
        self.stdio.check(command, args)
        # the child's session is shared by every call, with one request timeout: the start's
        # (its first request waits for the child to start); callers bound each call themselves
        client = Client(
            await self._child(server, command, args, secrets),
            timeout=self.start_timeout,
            init_timeout=self.start_timeout,
        )
        toolset = MCPToolset(client, tool_error_behavior="error", cache_tools=False)
        async with toolset:
            yield toolset

    def _http_client(self, server: McpServerRecord, headers: dict[str, str]) -> httpx2.AsyncClient:
        """The server's HTTP client, kept (its connections pooled) while the registration is
        unchanged; every request it sends passes the network rules."""
        version = (server.updated_at, server.url)
        kept = self._clients.get(server.id)
        if kept is not None and kept[0] == version:
            return kept[1]
        client = httpx2.AsyncClient(
            transport=GuardedTransport(self.network),
            headers=headers,
            timeout=httpx2.Timeout(self.call_timeout, connect=self.connect_timeout),
            follow_redirects=True,
            max_redirects=3,
        )
        self._clients[server.id] = (version, client)
        return client

    def setup_limit(self, server: McpServerRecord) -> float:
        """How long connecting may take at most (a stdio child may have to start)."""
        return self.start_timeout if server.transport == "stdio" else self.connect_timeout

    async def _child(
        self, server: McpServerRecord, command: str, args: list[str], env: dict[str, str]
    ) -> StdioTransport:
        """The server's kept-alive child; a changed registration starts a new one."""
        from fastmcp.client.transports import StdioTransport

        version = (server.updated_at, tuple(server.command_line))
        kept = self._children.get(server.id)
        if kept is not None and kept[0] == version:
            return kept[1]
        if kept is not None:
            await self.forget(server.id)
        transport = StdioTransport(command, args, env=env or None, keep_alive=True)
        self._children[server.id] = (version, transport)
        return transport

    async def forget(self, server_id: UUID) -> None:
        """Drop the server's HTTP client and stop its child, if one runs (its registration
        changed or was deleted)."""
        client = self._clients.pop(server_id, None)
        if client is not None:
            await client[1].aclose()
        kept = self._children.pop(server_id, None)
        if kept is not None:
            try:
                await kept[1].close()  # type: ignore[no-untyped-call]
            except Exception as exc:  # a child that will not stop must not stop the caller
                log.warning("stopping an MCP stdio child failed: %s", type(exc).__name__)

    async def aclose(self) -> None:
        for server_id in {*self._children, *self._clients}:
            await self.forget(server_id)
