"""Idempotency keys for chat turns, and an index over the conversations the relay owes.

Revision ID: 0003_idempotency
Revises: 0002_api_keys
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from employeevirtual.stores.sql.types import UTCDateTime

revision = "0003_idempotency"
down_revision = "0002_api_keys"
branch_labels = None
depends_on = None

S = "empl"
UNSYNCED = "synced_seq < message_count"


def upgrade() -> None:
    op.create_table(
        "idempotency_keys",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("token", sa.Uuid(), nullable=False),
        sa.Column("locked_until", UTCDateTime(), nullable=True),
        sa.Column("response_status", sa.Integer(), nullable=True),
        sa.Column("response_body", sa.Unicode(), nullable=True),
        sa.Column("conversation_id", sa.Uuid(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("completed_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], [f"{S}.users.id"], name="FK_idempotency_keys_user_id_users"
        ),
        sa.PrimaryKeyConstraint("user_id", "key", name="PK_idempotency_keys"),
        schema=S,
    )
    op.create_index("IX_idempotency_keys_created_at", "idempotency_keys", ["created_at"], schema=S)
    # The relay's work list. SQL Server's filtered indexes cannot compare two columns: there the
    # relay's query scans IX_conversations_last_message instead.
    if op.get_context().dialect.name != "mssql":
        op.create_index(
            "IX_conversations_unsynced",
            "conversations",
            ["last_message_at"],
            schema=S,
            postgresql_where=sa.text(UNSYNCED),
            sqlite_where=sa.text(UNSYNCED),
        )


def downgrade() -> None:
    if op.get_context().dialect.name != "mssql":
        op.drop_index("IX_conversations_unsynced", table_name="conversations", schema=S)
    op.drop_index("IX_idempotency_keys_created_at", table_name="idempotency_keys", schema=S)
    op.drop_table("idempotency_keys", schema=S)
