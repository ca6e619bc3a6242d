"""One-time claims (e.g. "the first account became the admin"): a primary key makes each claim
atomic on every backend.

Revision ID: 0008_security
Revises: 0014_analytics
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from employeevirtual.stores.sql.migrations.schema import real_schema
from employeevirtual.stores.sql.types import UTCDateTime

revision = "0008_security"
down_revision = "0014_analytics"
branch_labels = None
depends_on = None

S = "empl"


def upgrade() -> None:
    op.create_table(
        "claims",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("claimed_by", sa.Uuid(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="PK_claims"),
        schema=S,
    )
    # an existing installation already has its first admin: record the claim as made (in the
    # schema the engine maps ``empl`` to: none on SQLite)
    if op.get_context().as_sql:  # an offline script (SQL Server's): the schema is literal
        op.execute(
            f"INSERT INTO {S}.claims (name, created_at) SELECT 'first_admin', CURRENT_TIMESTAMP "
            f"WHERE EXISTS (SELECT 1 FROM {S}.users)"
        )
        return
    bind = op.get_bind()
    schema = real_schema()
    users = sa.table("users", sa.column("id", sa.Uuid()), schema=schema)
    claims = sa.table(
        "claims",
        sa.column("name", sa.String()),
        sa.column("created_at", UTCDateTime()),
        schema=schema,
    )
    if bind.execute(sa.select(sa.func.count()).select_from(users)).scalar_one():
        from datetime import UTC, datetime

        bind.execute(claims.insert().values(name="first_admin", created_at=datetime.now(UTC)))


def downgrade() -> None:
    op.drop_table("claims", schema=S)
