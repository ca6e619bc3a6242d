"""Server instances with a heartbeat, and the owner of a pending Idempotency-Key (issue 9).

Revision ID: 0009_reliability
Revises: 0012_knowledge
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from employeevirtual.stores.sql.migrations.schema import real_schema
from employeevirtual.stores.sql.types import UTCDateTime

revision = "0009_reliability"
down_revision = "0012_knowledge"
branch_labels = None
depends_on = None

S = "empl"


def upgrade() -> None:
    op.create_table(
        "server_instances",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("hostname", sa.Unicode(255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("boot", sa.String(64), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("heartbeat_at", UTCDateTime(), nullable=False),
        sa.Column("stopped_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="PK_server_instances"),
        schema=S,
    )
    op.create_index(
        "IX_server_instances_heartbeat_at", "server_instances", ["heartbeat_at"], schema=S
    )
    op.add_column(
        "idempotency_keys",
        sa.Column("owner_id", sa.Uuid(), nullable=True),
        schema=real_schema(),
    )


def downgrade() -> None:
    op.drop_column("idempotency_keys", "owner_id", schema=real_schema())
    op.drop_index("IX_server_instances_heartbeat_at", table_name="server_instances", schema=S)
    op.drop_table("server_instances", schema=S)
