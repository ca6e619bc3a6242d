"""Memory: facts an agent keeps about a person, conversation summaries, the agent's setting.

Revision ID: 0018_memory
Revises: 0013_mcp
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from employeevirtual.stores.sql.migrations.schema import real_schema
from employeevirtual.stores.sql.types import JSONDocument, UTCDateTime

revision = "0018_memory"
down_revision = "0013_mcp"
branch_labels = None
depends_on = None

S = "empl"
UNSYNCED_SUMMARY = "synced_at IS NULL"
UNSYNCED_MEMORY = "synced_version < version"


def upgrade() -> None:
    op.add_column("agents", sa.Column("memory", JSONDocument, nullable=True), schema=real_schema())
    op.create_table(
        "memories",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("agent_id", sa.Uuid(), nullable=False),
        sa.Column("conversation_id", sa.Uuid(), nullable=True),
        sa.Column("content", sa.Unicode(), nullable=False),
        sa.Column("source_message_id", sa.Uuid(), nullable=True),
        sa.Column("source_conversation_id", sa.Uuid(), nullable=True),
        sa.Column("source_tool_call", sa.String(100), nullable=True),
        sa.Column("version", sa.Integer(), server_default=sa.text("1"), nullable=False),
        sa.Column("synced_version", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("deleted_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], [f"{S}.users.id"], name="FK_memories_user_id_users"),
        sa.PrimaryKeyConstraint("id", name="PK_memories"),
        schema=S,
    )
    op.create_index("IX_memories_user_agent", "memories", ["user_id", "agent_id"], schema=S)
    op.create_index("IX_memories_conversation_id", "memories", ["conversation_id"], schema=S)
    # not on SQL Server: its filtered indexes cannot compare two columns
    op.create_index(
        "IX_memories_unsynced",
        "memories",
        ["updated_at"],
        schema=S,
        postgresql_where=sa.text(UNSYNCED_MEMORY),
        sqlite_where=sa.text(UNSYNCED_MEMORY),
    )
    op.create_table(
        "conversation_summaries",
        sa.Column("conversation_id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("covered_seq", sa.Integer(), nullable=False),
        sa.Column("content", sa.Unicode(), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("messages", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("synced_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            [f"{S}.conversations.id"],
            name="FK_conversation_summaries_conversation_id_conversations",
        ),
        sa.PrimaryKeyConstraint("conversation_id", "version", name="PK_conversation_summaries"),
        schema=S,
    )
    op.create_index(
        "IX_conversation_summaries_user_id", "conversation_summaries", ["user_id"], schema=S
    )
    op.create_index(
        "IX_conversation_summaries_unsynced",
        "conversation_summaries",
        ["created_at"],
        schema=S,
        postgresql_where=sa.text(UNSYNCED_SUMMARY),
        sqlite_where=sa.text(UNSYNCED_SUMMARY),
        mssql_where=sa.text(UNSYNCED_SUMMARY),
    )


def downgrade() -> None:
    op.drop_index(
        "IX_conversation_summaries_unsynced", table_name="conversation_summaries", schema=S
    )
    op.drop_index(
        "IX_conversation_summaries_user_id", table_name="conversation_summaries", schema=S
    )
    op.drop_table("conversation_summaries", schema=S)
    op.drop_index("IX_memories_unsynced", table_name="memories", schema=S)
    op.drop_index("IX_memories_conversation_id", table_name="memories", schema=S)
    op.drop_index("IX_memories_user_agent", table_name="memories", schema=S)
    op.drop_table("memories", schema=S)
    op.drop_column("agents", "memory", schema=real_schema())
