"""MCP servers (issue 13)."""

from __future__ import annotations

from sqlalchemy import Column, String, Table, Unicode, UniqueConstraint, Uuid

from employeevirtual.stores.sql.tables.schema import metadata
from employeevirtual.stores.sql.types import JSONDocument, UTCDateTime

__all__ = ["mcp_servers"]


# MCP servers an admin registered (issue 13). ``secrets`` is a Fernet token (headers or stdio
# environment), never returned; ``secret_names`` says which names it holds. ``available_to``:
# the user ids that may use it, NULL for every user. ``tool_list``: the tools as last fetched.
mcp_servers = Table(
    "mcp_servers",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("name", String(40), nullable=False),
    Column("description", Unicode(500), nullable=True),
    Column("transport", String(10), nullable=False),
    Column("url", Unicode(2000), nullable=True),
    Column("command_line", JSONDocument, nullable=True),
    Column("secret_names", JSONDocument, nullable=True),
    Column("secrets", String(8000), nullable=True),
    Column("available_to", JSONDocument, nullable=True),
    Column("tool_list", JSONDocument, nullable=True),
    Column("status", String(20), nullable=False, server_default="unknown"),
    Column("status_message", Unicode(1000), nullable=True),
    Column("refreshed_at", UTCDateTime, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    UniqueConstraint("name"),
)
