"""MCP servers an admin registered (transport, encrypted secrets, who may use them, tools).

Revision ID: 0013_mcp
Revises: 0015_people
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from employeevirtual.stores.sql.types import JSONDocument, UTCDateTime

revision = "0013_mcp"
down_revision = "0015_people"
branch_labels = None
depends_on = None

S = "empl"


def upgrade() -> None:
    op.create_table(
        "mcp_servers",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(40), nullable=False),
        sa.Column("description", sa.Unicode(500), nullable=True),
        sa.Column("transport", sa.String(10), nullable=False),
        sa.Column("url", sa.Unicode(2000), nullable=True),
        sa.Column("command_line", JSONDocument, nullable=True),
        sa.Column("secret_names", JSONDocument, nullable=True),
        sa.Column("secrets", sa.String(8000), nullable=True),
        sa.Column("available_to", JSONDocument, nullable=True),
        sa.Column("tool_list", JSONDocument, nullable=True),
        sa.Column("status", sa.String(20), nullable=False, server_default="unknown"),
        sa.Column("status_message", sa.Unicode(1000), nullable=True),
        sa.Column("refreshed_at", UTCDateTime(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="PK_mcp_servers"),
        sa.UniqueConstraint("name", name="UQ_mcp_servers_name"),
        schema=S,
    )


def downgrade() -> None:
    op.drop_table("mcp_servers", schema=S)
