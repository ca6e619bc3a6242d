"""``empl.mcp_servers``: the MCP servers an admin registered. Never commits."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.engine import Row

from employeevirtual.stores.sql.engine import Connection
from employeevirtual.stores.sql.tables import mcp_servers

__all__ = ["McpServerRecord", "McpServerRepository"]

t = mcp_servers.c


@dataclass(frozen=True, slots=True)
class McpServerRecord:
    id: UUID
    name: str
    description: str | None
    transport: str  # "http" or "stdio"
    url: str | None
    command_line: tuple[str, ...]
    secret_names: tuple[str, ...]
    sealed_secrets: str | None = field(repr=False)
    available_to: tuple[UUID, ...] | None  # None: every user
    tools: tuple[dict[str, Any], ...]  # {name, description, input_schema}
    status: str  # unknown, available, unavailable
    status_message: str | None
    refreshed_at: datetime | None
    created_at: datetime
    updated_at: datetime

    def usable_by(self, user_id: UUID, *, is_admin: bool = False) -> bool:
        return is_admin or self.available_to is None or user_id in self.available_to


def _record(row: Row[Any]) -> McpServerRecord:
    m = row._mapping
    available = m["available_to"]
    return McpServerRecord(
        id=m["id"],
        name=m["name"],
        description=m["description"],
        transport=m["transport"],
        url=m["url"],
        command_line=tuple(m["command_line"] or ()),
        secret_names=tuple(m["secret_names"] or ()),
        sealed_secrets=m["secrets"],
        available_to=None if available is None else tuple(UUID(u) for u in available),
        tools=tuple(m["tool_list"] or ()),
        status=m["status"],
        status_message=m["status_message"],
        refreshed_at=m["refreshed_at"],
        created_at=m["created_at"],
        updated_at=m["updated_at"],
    )


def _columns(values: dict[str, Any]) -> dict[str, Any]:
    out = dict(values)
    if "available_to" in out and out["available_to"] is not None:
        out["available_to"] = [str(u) for u in out["available_to"]]
    for name in ("command_line", "secret_names", "tool_list"):
        if name in out and out[name] is not None:
            out[name] = list(out[name])
    return out


class McpServerRepository:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    async def all(self) -> list[McpServerRecord]:
        rows = await self.conn.execute(select(mcp_servers).order_by(t.name))
        return [_record(r) for r in rows]

    async def get(self, server_id: UUID) -> McpServerRecord | None:
        row = (await self.conn.execute(select(mcp_servers).where(t.id == server_id))).first()
        return None if row is None else _record(row)

    async def by_name(self, name: str) -> McpServerRecord | None:
        row = (await self.conn.execute(select(mcp_servers).where(t.name == name))).first()
        return None if row is None else _record(row)

    async def count(self) -> int:
        query = select(func.count()).select_from(mcp_servers)
        return int((await self.conn.execute(query)).scalar_one())

    async def create(self, values: dict[str, Any], *, now: datetime) -> UUID:
        server_id = uuid.uuid4()
        await self.conn.execute(
            insert(mcp_servers).values(
                id=server_id, created_at=now, updated_at=now, **_columns(values)
            )
        )
        return server_id

    async def update(self, server_id: UUID, values: dict[str, Any], *, now: datetime) -> None:
        await self.conn.execute(
            update(mcp_servers).where(t.id == server_id).values(updated_at=now, **_columns(values))
        )

    async def set_tools(
        self,
        server_id: UUID,
        *,
        tools: list[dict[str, Any]] | None,
        status: str,
        message: str | None,
        now: datetime,
    ) -> None:
        """The result of a refresh; a failed one keeps the last tool list (``tools`` None)."""
        values: dict[str, Any] = {"status": status, "status_message": message, "refreshed_at": now}
        if tools is not None:
            values["tool_list"] = tools
        await self.conn.execute(update(mcp_servers).where(t.id == server_id).values(**values))

    async def delete(self, server_id: UUID) -> None:
        await self.conn.execute(delete(mcp_servers).where(t.id == server_id))
