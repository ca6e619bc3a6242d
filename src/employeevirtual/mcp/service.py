"""MCP servers: the admin's registry (audited), the cached tool lists, and the tools each run
may call. Who may use a server: every user, or the user ids listed in ``available_to``
(admins always)."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncEngine

from employeevirtual.agents.tools import TOOLS
from employeevirtual.errors import Conflict, InvalidInput, NotFound
from employeevirtual.mcp.connect import Connections
from employeevirtual.mcp.network import OutboundRefused
from employeevirtual.mcp.secrets import SecretsUnavailable
from employeevirtual.mcp.toolset import McpTool, McpToolset
from employeevirtual.stores.records import UserRecord
from employeevirtual.stores.sql.audit import AuditRepository
from employeevirtual.stores.sql.engine import read_connection, write_transaction
from employeevirtual.stores.sql.mcp_servers import McpServerRecord, McpServerRepository
from employeevirtual.stores.sql.users import UserReader

__all__ = ["McpLimits", "McpService", "ServerFields"]

log = logging.getLogger(__name__)

_MAX_DESCRIPTION = 2000
_MAX_SCHEMA_CHARS = 20_000


@dataclass(frozen=True, slots=True)
class McpLimits:
    max_servers: int
    max_tools_per_server: int
    max_calls_per_turn: int
    result_chars: int
    call_timeout: float
    connect_timeout: float
    catalog_seconds: float


@dataclass
class ServerFields:
    """What an admin sets; ``secrets`` are headers (http) or environment variables (stdio)."""

    name: str | None = None
    description: str | None = None
    transport: str | None = None
    url: str | None = None
    command_line: list[str] | None = None
    secrets: dict[str, str] | None = None
    available_to: list[UUID] | None = None
    set_fields: set[str] = field(default_factory=set)


def _tool_entries(tools: Iterable[Any], limit: int) -> list[dict[str, Any]]:
    """The server's tools as the catalog keeps them (bounded: count, description, schema)."""
    out: list[dict[str, Any]] = []
    for tool in tools:
        schema = dict(getattr(tool, "input_schema", None) or getattr(tool, "inputSchema", {}) or {})
        if len(json.dumps(schema, default=str)) > _MAX_SCHEMA_CHARS:
            continue  # a schema this large is not a tool a model should be handed
        out.append(
            {
                "name": str(tool.name)[:200],
                "description": (tool.description or "")[:_MAX_DESCRIPTION],
                "input_schema": schema,
            }
        )
        if len(out) >= limit:
            break
    return out


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:300]


class McpService:
    def __init__(self, *, engine: AsyncEngine, connections: Connections, limits: McpLimits) -> None:
        self.engine = engine
        self.connections = connections
        self.limits = limits
        self._catalog: list[McpServerRecord] | None = None
        self._catalog_at = 0.0

    # -- the catalog every process keeps for a few seconds ------------------------------------

    async def catalog(self) -> list[McpServerRecord]:
        fresh = time.monotonic() - self._catalog_at < self.limits.catalog_seconds
        if self._catalog is None or not fresh:
            async with read_connection(self.engine) as conn:
                self._catalog = await McpServerRepository(conn).all()
            self._catalog_at = time.monotonic()
        return self._catalog

    def _invalidate(self) -> None:
        self._catalog = None

    async def usable(self, user: UserRecord) -> list[McpServerRecord]:
        return [s for s in await self.catalog() if s.usable_by(user.id, is_admin=user.is_admin)]

    async def tool_names(self, user: UserRecord) -> dict[str, str]:
        """``server/tool`` -> description, for the servers ``user`` may use."""
        return {
            f"{s.name}/{t['name']}": t.get("description") or ""
            for s in await self.usable(user)
            for t in s.tools
        }

    async def check_agent_tools(self, user: UserRecord, tools: Sequence[str]) -> None:
        """InvalidInput naming the unknown tools and listing the valid ones: the built-in
        tools and ``server/tool`` on the servers ``user`` may use."""
        builtin = set(TOOLS)
        wanted_mcp = [t for t in tools if "/" in t]
        mcp_names = set(await self.tool_names(user)) if wanted_mcp else set()
        unknown = [t for t in tools if t not in builtin and t not in mcp_names]
        if unknown:
            if not mcp_names:
                mcp_names = set(await self.tool_names(user))
            valid = sorted(builtin) + sorted(mcp_names)
            raise InvalidInput(f"unknown tools {unknown}; valid tools are: {', '.join(valid)}")

    async def toolset_for(self, user_id: UUID, tools: Sequence[str]) -> McpToolset | None:
        """The run's MCP tools: the agent's ``server/tool`` names on servers the caller may
        use. A tool whose server is gone or no longer offered to the caller is left out."""
        wanted = [t for t in tools if "/" in t]
        if not wanted:
            return None
        try:
            servers = {s.name: s for s in await self.catalog()}
            async with read_connection(self.engine) as conn:
                user = await UserReader(conn).get(user_id)
        except Exception as exc:  # no catalog: the turn runs without MCP tools
            log.warning("MCP catalog unavailable for a turn: %s", type(exc).__name__)
            return None
        chosen: list[McpTool] = []
        for name in wanted:
            server_name, _, tool_name = name.partition("/")
            server = servers.get(server_name)
            if server is None or user is None:
                continue
            if not server.usable_by(user_id, is_admin=user.is_admin):
                continue
            for tool in server.tools:
                if tool["name"] == tool_name:
                    chosen.append(
                        McpTool(
                            server=server,
                            name=tool_name,
                            description=tool.get("description") or "",
                            input_schema=tool.get("input_schema") or {},
                        )
                    )
        if not chosen:
            return None
        return McpToolset(
            chosen,
            connections=self.connections,
            max_calls=self.limits.max_calls_per_turn,
            result_chars=self.limits.result_chars,
            call_timeout=self.limits.call_timeout,
        )

    # -- the admin's registry -----------------------------------------------------------------

    async def all(self) -> list[McpServerRecord]:
        async with read_connection(self.engine) as conn:
            return await McpServerRepository(conn).all()

    async def get(self, server_id: UUID) -> McpServerRecord:
        async with read_connection(self.engine) as conn:
            server = await McpServerRepository(conn).get(server_id)
        if server is None:
            raise NotFound(f"MCP server {server_id} not found")
        return server

    async def _check_reach(
        self, transport: str, url: str | None, command: list[str] | None
    ) -> None:
        """The URL against the allowlist and its addresses (resolved now; every request is
        checked again when it is sent), or the command against the listed ones."""
        try:
            if transport == "http":
                assert url is not None
                await self.connections.network.check(url)
            else:
                assert command
                self.connections.stdio.check(command[0], command[1:])
        except OutboundRefused as exc:
            raise InvalidInput(str(exc)) from None

    def _seal(self, secrets: dict[str, str] | None) -> str | None:
        try:
            return self.connections.secrets.seal(secrets or {})
        except SecretsUnavailable as exc:
            raise Conflict(f"cannot store secrets: {exc}") from None

    async def _users_exist(self, conn: Any, ids: Sequence[UUID] | None) -> None:
        if not ids:
            return
        reader = UserReader(conn)
        missing = [str(u) for u in ids if await reader.get(u) is None]
        if missing:
            raise InvalidInput(f"available_to: no such users: {', '.join(missing)}")

    async def create(
        self, admin: UserRecord, new: ServerFields, *, client_ip: str | None
    ) -> McpServerRecord:
        assert new.name is not None and new.transport is not None
        await self._check_reach(new.transport, new.url, new.command_line)
        sealed = self._seal(new.secrets)
        now = datetime.now(UTC)
        async with write_transaction(self.engine) as conn:
            repo = McpServerRepository(conn)
            if await repo.by_name(new.name) is not None:
                raise Conflict(f"an MCP server named {new.name!r} exists; pick another name")
            if await repo.count() >= self.limits.max_servers:
                raise Conflict(f"{self.limits.max_servers} MCP servers are registered (the limit)")
            await self._users_exist(conn, new.available_to)
            server_id = await repo.create(
                {
                    "name": new.name,
                    "description": new.description,
                    "transport": new.transport,
                    "url": new.url,
                    "command_line": new.command_line,
                    "secret_names": sorted(new.secrets or {}),
                    "secrets": sealed,
                    "available_to": new.available_to,
                    "status": "unknown",
                },
                now=now,
            )
            await AuditRepository(conn).record(
                action="mcp_server.create",
                actor_id=admin.id,
                target_type="mcp_server",
                target_id=str(server_id),
                details=_audit_details(new),
                client_ip=client_ip,
                now=now,
            )
        self._invalidate()
        return await self.refresh(server_id)

    async def update(
        self, admin: UserRecord, server_id: UUID, changes: ServerFields, *, client_ip: str | None
    ) -> McpServerRecord:
        current = await self.get(server_id)
        values: dict[str, Any] = {}
        url = changes.url if "url" in changes.set_fields else current.url
        command = (
            changes.command_line
            if "command_line" in changes.set_fields
            else list(current.command_line)
        )
        if {"url", "command_line"} & changes.set_fields:
            if current.transport == "http" and "command_line" in changes.set_fields:
                raise InvalidInput("an http server has a url, not a command")
            if current.transport == "stdio" and "url" in changes.set_fields:
                raise InvalidInput("a stdio server has a command, not a url")
            if (current.transport == "http" and not url) or (
                current.transport == "stdio" and not command
            ):
                raise InvalidInput("url (http) or command (stdio) cannot be removed")
            await self._check_reach(current.transport, url, command)
            values.update(url=url, command_line=command or None)
        if "secrets" in changes.set_fields:
            values.update(
                secrets=self._seal(changes.secrets), secret_names=sorted(changes.secrets or {})
            )
        if "description" in changes.set_fields:
            values["description"] = changes.description
        if "available_to" in changes.set_fields:
            values["available_to"] = changes.available_to
        now = datetime.now(UTC)
        async with write_transaction(self.engine) as conn:
            repo = McpServerRepository(conn)
            if await repo.get(server_id) is None:
                raise NotFound(f"MCP server {server_id} not found")
            await self._users_exist(conn, changes.available_to)
            await repo.update(server_id, values, now=now)
            await AuditRepository(conn).record(
                action="mcp_server.update",
                actor_id=admin.id,
                target_type="mcp_server",
                target_id=str(server_id),
                details={"name": current.name, "fields": sorted(changes.set_fields)},
                client_ip=client_ip,
                now=now,
            )
        self._invalidate()
        await self.connections.forget(server_id)
        if {"url", "command_line", "secrets"} & changes.set_fields:
            return await self.refresh(server_id)
        return await self.get(server_id)

    async def delete(self, admin: UserRecord, server_id: UUID, *, client_ip: str | None) -> None:
        now = datetime.now(UTC)
        async with write_transaction(self.engine) as conn:
            repo = McpServerRepository(conn)
            server = await repo.get(server_id)
            if server is None:
                raise NotFound(f"MCP server {server_id} not found")
            await repo.delete(server_id)
            await AuditRepository(conn).record(
                action="mcp_server.delete",
                actor_id=admin.id,
                target_type="mcp_server",
                target_id=str(server_id),
                details={"name": server.name},
                client_ip=client_ip,
                now=now,
            )
        self._invalidate()
        await self.connections.forget(server_id)

    async def refresh(self, server_id: UUID) -> McpServerRecord:
        """Fetch the server's tool list (bounded in time) and cache it; a server that cannot
        be reached is marked unavailable and keeps its last list."""
        server = await self.get(server_id)
        await self.connections.load()
        limit = self.connections.setup_limit(server) + self.limits.call_timeout
        tools: list[dict[str, Any]] | None = None
        try:
            async with asyncio.timeout(limit):
                async with self.connections.session(server) as session:
                    listed = await session.list_tools()
            tools = _tool_entries(listed, self.limits.max_tools_per_server)
            status, message = "available", None
        except TimeoutError:
            status, message = "unavailable", f"no answer within {limit:g} s"
        except (OutboundRefused, SecretsUnavailable) as exc:
            status, message = "unavailable", _short(exc)
        except Exception as exc:
            log.warning("MCP server %s: refresh failed: %s", server.name, type(exc).__name__)
            status, message = "unavailable", f"cannot connect: {_short(exc)}"
        async with write_transaction(self.engine) as conn:
            await McpServerRepository(conn).set_tools(
                server_id, tools=tools, status=status, message=message, now=datetime.now(UTC)
            )
        self._invalidate()
        return await self.get(server_id)

    async def aclose(self) -> None:
        await self.connections.aclose()


def _audit_details(new: ServerFields) -> dict[str, Any]:
    """What was registered, without a secret's value."""
    return {
        "name": new.name,
        "transport": new.transport,
        "url": new.url,
        "command": new.command_line,
        "secret_names": sorted(new.secrets or {}),
        "available_to": None if new.available_to is None else [str(u) for u in new.available_to],
    }
