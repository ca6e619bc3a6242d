"""MCP servers: the admin's registry (/api/admin/mcp-servers) and, for everyone, the servers
made available to them (/api/mcp-servers, without URLs, commands or secret names)."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import Depends, Response, status

from employeevirtual.api.deps import AdminUser, ClientIP, CurrentUser, from_runtime
from employeevirtual.api.mcp_schemas import (
    McpServerIn,
    McpServerOut,
    McpServerPage,
    McpServerPatch,
)
from employeevirtual.api.routing import Router
from employeevirtual.mcp.service import McpService, ServerFields

router = Router(tags=["mcp"])
ADMIN = "/api/admin/mcp-servers"


McpDep = Annotated[McpService, Depends(from_runtime(lambda r: r.mcp))]


@router.post(ADMIN, status_code=status.HTTP_201_CREATED)
async def register_server(
    body: McpServerIn, admin: AdminUser, mcp: McpDep, ip: ClientIP
) -> McpServerOut:
    """Register a server and fetch its tools at once (a server that cannot be reached is
    registered as ``unavailable``; refresh it later). Headers (http) or env (stdio) are
    encrypted at rest and never returned."""
    fields = ServerFields(
        name=body.name,
        description=body.description,
        transport=body.transport,
        url=body.url,
        command_line=body.command,
        secrets=body.secrets,
        available_to=body.available_to,
    )
    return McpServerOut.of(await mcp.create(admin, fields, client_ip=ip))


@router.get(ADMIN)
async def list_servers(_admin: AdminUser, mcp: McpDep) -> McpServerPage:
    return McpServerPage(items=[McpServerOut.of(s) for s in await mcp.all()])


@router.get(ADMIN + "/{server_id}")
async def get_server(server_id: UUID, _admin: AdminUser, mcp: McpDep) -> McpServerOut:
    return McpServerOut.of(await mcp.get(server_id))


@router.patch(ADMIN + "/{server_id}")
async def update_server(
    server_id: UUID, body: McpServerPatch, admin: AdminUser, mcp: McpDep, ip: ClientIP
) -> McpServerOut:
    """Change a server; new headers/env replace the old ones whole. A changed url, command or
    secret fetches the tools again."""
    given = body.model_fields_set
    set_fields = {
        {"command": "command_line", "headers": "secrets", "env": "secrets"}.get(name, name)
        for name in given
    }
    fields = ServerFields(
        description=body.description,
        url=body.url,
        command_line=body.command,
        secrets=body.headers if "headers" in given else body.env,
        available_to=body.available_to,
        set_fields=set_fields,
    )
    return McpServerOut.of(await mcp.update(admin, server_id, fields, client_ip=ip))


@router.delete(ADMIN + "/{server_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_server(server_id: UUID, admin: AdminUser, mcp: McpDep, ip: ClientIP) -> Response:
    """Agents that name its tools keep the names; the tools are gone from their runs."""
    await mcp.delete(admin, server_id, client_ip=ip)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(ADMIN + "/{server_id}/refresh")
async def refresh_server(server_id: UUID, _admin: AdminUser, mcp: McpDep) -> McpServerOut:
    """Fetch the tool list again (and the server's status)."""
    await mcp.get(server_id)
    return McpServerOut.of(await mcp.refresh(server_id))


@router.get("/api/mcp-servers")
async def servers_for_me(user: CurrentUser, mcp: McpDep) -> McpServerPage:
    """The servers made available to the caller, their status and tools (``server/tool``)."""
    return McpServerPage(items=[McpServerOut.of(s, admin=False) for s in await mcp.usable(user)])
