"""API keys for server-to-server callers: only the SHA-256 digest is kept.

Revision ID: 0002_api_keys
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from employeevirtual.stores.sql.types import UTCDateTime

revision = "0002_api_keys"
down_revision = "0001"
branch_labels = None
depends_on = None

S = "empl"


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.Unicode(200), nullable=False),
        sa.Column("prefix", sa.String(20), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("last_used_at", UTCDateTime(), nullable=True),
        sa.Column("revoked_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], [f"{S}.users.id"], name="FK_api_keys_user_id_users"),
        sa.PrimaryKeyConstraint("id", name="PK_api_keys"),
        sa.UniqueConstraint("digest", name="UQ_api_keys_digest"),
        schema=S,
    )
    op.create_index("IX_api_keys_user_id", "api_keys", ["user_id"], schema=S)


def downgrade() -> None:
    op.drop_index("IX_api_keys_user_id", table_name="api_keys", schema=S)
    op.drop_table("api_keys", schema=S)
