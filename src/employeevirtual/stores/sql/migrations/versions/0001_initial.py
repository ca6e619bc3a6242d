"""The seed's tables in schema empl: users, agents, conversations, messages, audit trail.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from employeevirtual.stores.sql.types import JSONDocument, UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

S = "empl"


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("name", sa.Unicode(200), nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("role", sa.String(20), server_default="user", nullable=False),
        sa.Column("is_active", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="PK_users"),
        sa.UniqueConstraint("email", name="UQ_users_email"),
        schema=S,
    )
    op.create_table(
        "agents",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.Unicode(200), nullable=False),
        sa.Column("description", sa.Unicode(2000), nullable=True),
        sa.Column("instructions", sa.Unicode(), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("model_settings", JSONDocument, nullable=True),
        sa.Column("tools", JSONDocument, nullable=True),
        sa.Column("visibility", sa.String(20), server_default="private", nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=True),
        sa.Column("deleted_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], [f"{S}.users.id"], name="FK_agents_user_id_users"),
        sa.PrimaryKeyConstraint("id", name="PK_agents"),
        schema=S,
    )
    op.create_index("IX_agents_user_id", "agents", ["user_id"], schema=S)
    op.create_table(
        "conversations",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("agent_id", sa.Uuid(), nullable=False),
        sa.Column("title", sa.Unicode(200), nullable=True),
        sa.Column("status", sa.String(50), server_default="active", nullable=False),
        sa.Column("session_id", sa.String(100), nullable=True),
        sa.Column("metadata", JSONDocument, nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=True),
        sa.Column("last_message_at", UTCDateTime(), nullable=True),
        sa.Column("message_count", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("total_tokens", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("total_cost", sa.Numeric(18, 8), server_default=sa.text("0"), nullable=False),
        sa.Column(
            "total_response_time", sa.Numeric(18, 6), server_default=sa.text("0"), nullable=False
        ),
        sa.Column("agent_runs", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("synced_seq", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("last_error", sa.Unicode(2000), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], [f"{S}.users.id"], name="FK_conversations_user_id_users"
        ),
        sa.ForeignKeyConstraint(
            ["agent_id"], [f"{S}.agents.id"], name="FK_conversations_agent_id_agents"
        ),
        sa.PrimaryKeyConstraint("id", name="PK_conversations"),
        schema=S,
    )
    op.create_index("IX_conversations_user_id", "conversations", ["user_id"], schema=S)
    op.create_index("IX_conversations_agent_id", "conversations", ["agent_id"], schema=S)
    op.create_index("IX_conversations_status", "conversations", ["status"], schema=S)
    op.create_index("IX_conversations_last_message", "conversations", ["last_message_at"], schema=S)
    op.create_table(
        "messages",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("conversation_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("agent_id", sa.Uuid(), nullable=True),
        sa.Column("content", sa.Unicode(), nullable=False),
        sa.Column("message_type", sa.String(50), nullable=False),
        sa.Column("message_metadata", JSONDocument, nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("edited_at", UTCDateTime(), nullable=True),
        sa.Column("is_edited", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            [f"{S}.conversations.id"],
            name="FK_messages_conversation_id_conversations",
        ),
        sa.PrimaryKeyConstraint("id", name="PK_messages"),
        sa.UniqueConstraint("conversation_id", "seq", name="UQ_messages_conversation_seq"),
        schema=S,
    )
    op.create_index("IX_messages_conversation_id", "messages", ["conversation_id"], schema=S)
    op.create_index("IX_messages_user_id", "messages", ["user_id"], schema=S)
    op.create_index("IX_messages_type", "messages", ["message_type"], schema=S)
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("actor_id", sa.Uuid(), nullable=True),
        sa.Column("action", sa.String(100), nullable=False),
        sa.Column("target_type", sa.String(50), nullable=True),
        sa.Column("target_id", sa.String(100), nullable=True),
        sa.Column("details", JSONDocument, nullable=True),
        sa.Column("client_ip", sa.String(64), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="PK_audit_log"),
        schema=S,
    )
    op.create_index("IX_audit_log_actor_id", "audit_log", ["actor_id"], schema=S)
    op.create_index("IX_audit_log_created_at", "audit_log", ["created_at"], schema=S)


def downgrade() -> None:
    for table in ("audit_log", "messages", "conversations", "agents", "users"):
        op.drop_table(table, schema=S)
