"""Monthly budgets (with their counters), feedback on agent messages, conversations by cost.

Revision ID: 0014_analytics
Revises: 0003_idempotency
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from employeevirtual.stores.sql.types import UTCDateTime

revision = "0014_analytics"
down_revision = "0003_idempotency"
branch_labels = None
depends_on = None

S = "empl"
UNSYNCED = "synced_at IS NULL"


def upgrade() -> None:
    # GET /api/conversations?sort=cost: the owner's conversations by cost, an index range
    op.create_index(
        "IX_conversations_user_cost", "conversations", ["user_id", "total_cost"], schema=S
    )
    op.create_table(
        "budgets",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("scope", sa.String(10), nullable=False),
        sa.Column("scope_id", sa.Uuid(), nullable=False),
        sa.Column("max_cost", sa.Numeric(18, 8), nullable=True),
        sa.Column("max_tokens", sa.BigInteger(), nullable=True),
        sa.Column("period", sa.String(7), nullable=False),
        sa.Column("used_cost", sa.Numeric(18, 8), server_default=sa.text("0"), nullable=False),
        sa.Column("used_tokens", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("warned_level", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("created_by", sa.Uuid(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="PK_budgets"),
        sa.UniqueConstraint("scope", "scope_id", name="UQ_budgets_scope"),
        schema=S,
    )
    op.create_table(
        "message_feedback",
        sa.Column("message_id", sa.Uuid(), nullable=False),
        sa.Column("conversation_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("rating", sa.String(10), nullable=False),
        sa.Column("comment", sa.Unicode(2000), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("synced_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["message_id"], [f"{S}.messages.id"], name="FK_message_feedback_message_id_messages"
        ),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            [f"{S}.conversations.id"],
            name="FK_message_feedback_conversation_id_conversations",
        ),
        sa.PrimaryKeyConstraint("message_id", name="PK_message_feedback"),
        schema=S,
    )
    op.create_index(
        "IX_message_feedback_conversation_id",
        "message_feedback",
        ["conversation_id"],
        schema=S,
    )
    op.create_index(
        "IX_message_feedback_unsynced",
        "message_feedback",
        ["updated_at"],
        schema=S,
        postgresql_where=sa.text(UNSYNCED),
        sqlite_where=sa.text(UNSYNCED),
        mssql_where=sa.text(UNSYNCED),
    )


def downgrade() -> None:
    op.drop_index("IX_message_feedback_unsynced", table_name="message_feedback", schema=S)
    op.drop_index("IX_message_feedback_conversation_id", table_name="message_feedback", schema=S)
    op.drop_table("message_feedback", schema=S)
    op.drop_table("budgets", schema=S)
    op.drop_index("IX_conversations_user_cost", table_name="conversations", schema=S)
