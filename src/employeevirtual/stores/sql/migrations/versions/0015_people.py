"""People's data: the search index, export jobs and erasure jobs (tombstones).

Revision ID: 0015_people
Revises: 0009_reliability
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from employeevirtual.stores.sql.fulltext import mssql_ddl, pg_vector_sql, sqlite_ddl, sqlite_drop
from employeevirtual.stores.sql.migrations.schema import real_schema
from employeevirtual.stores.sql.types import UTCDateTime

revision = "0015_people"
down_revision = "0009_reliability"
branch_labels = None
depends_on = None

S = "empl"


def upgrade() -> None:
    op.create_table(
        "export_jobs",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("requested_by", sa.Uuid(), nullable=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("completed_at", UTCDateTime(), nullable=True),
        sa.Column("expires_at", UTCDateTime(), nullable=True),
        sa.Column("size_bytes", sa.Integer(), nullable=True),
        sa.Column("error", sa.Unicode(2000), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], [f"{S}.users.id"], name="FK_export_jobs_user_id_users"
        ),
        sa.PrimaryKeyConstraint("id", name="PK_export_jobs"),
        schema=S,
    )
    op.create_index("IX_export_jobs_user_id", "export_jobs", ["user_id"], schema=S)
    op.create_index("IX_export_jobs_created_at", "export_jobs", ["created_at"], schema=S)
    op.create_table(
        "erasure_jobs",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=True),
        sa.Column("requested_by", sa.String(20), nullable=False),
        sa.Column("actor_id", sa.Uuid(), nullable=True),
        sa.Column("shared_agents", sa.String(20), nullable=False),
        sa.Column("heir_id", sa.Uuid(), nullable=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("step", sa.String(50), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=True),
        sa.Column("completed_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="PK_erasure_jobs"),
        schema=S,
    )
    op.create_index("IX_erasure_jobs_status", "erasure_jobs", ["status"], schema=S)
    op.create_index("IX_erasure_jobs_user_id", "erasure_jobs", ["user_id"], schema=S)

    dialect = op.get_context().dialect.name
    if dialect == "sqlite":
        for statement in sqlite_ddl():
            op.execute(statement)
    elif dialect == "postgresql":
        # ALTER TABLE ADD COLUMN is not schema-translated by Alembic: name the real schema
        schema = real_schema()
        for table, column, name in (
            ("messages", "content", "search_vector"),
            ("conversations", "title", "title_vector"),
        ):
            op.add_column(
                table,
                sa.Column(
                    name,
                    postgresql.TSVECTOR(),
                    sa.Computed(pg_vector_sql(column), persisted=True),
                ),
                schema=schema,
            )
            op.create_index(
                f"IX_{table}_{name}", table, [name], schema=schema, postgresql_using="gin"
            )
    elif dialect == "mssql":
        with op.get_context().autocommit_block():
            for statement in mssql_ddl(real_schema() or S):
                op.execute(statement)


def downgrade() -> None:
    dialect = op.get_context().dialect.name
    if dialect == "sqlite":
        for statement in sqlite_drop():
            op.execute(statement)
    elif dialect == "postgresql":
        schema = real_schema()
        for table, name in (("messages", "search_vector"), ("conversations", "title_vector")):
            op.drop_index(f"IX_{table}_{name}", table_name=table, schema=schema)
            op.drop_column(table, name, schema=schema)
    op.drop_index("IX_erasure_jobs_user_id", table_name="erasure_jobs", schema=S)
    op.drop_index("IX_erasure_jobs_status", table_name="erasure_jobs", schema=S)
    op.drop_table("erasure_jobs", schema=S)
    op.drop_index("IX_export_jobs_created_at", table_name="export_jobs", schema=S)
    op.drop_index("IX_export_jobs_user_id", table_name="export_jobs", schema=S)
    op.drop_table("export_jobs", schema=S)
