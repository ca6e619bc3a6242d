"""Knowledge bases and their documents; the knowledge bases an agent may search.

Revision ID: 0012_knowledge
Revises: 0008_security
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from employeevirtual.stores.sql.migrations.schema import real_schema
from employeevirtual.stores.sql.types import JSONDocument, UTCDateTime

revision = "0012_knowledge"
down_revision = "0008_security"
branch_labels = None
depends_on = None

S = "empl"


def upgrade() -> None:
    op.add_column(
        "agents",
        sa.Column("knowledge_base_ids", JSONDocument, nullable=True),
        schema=real_schema(),
    )
    op.create_table(
        "knowledge_bases",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.Unicode(200), nullable=False),
        sa.Column("description", sa.Unicode(2000), nullable=True),
        sa.Column("visibility", sa.String(20), nullable=False, server_default="private"),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], [f"{S}.users.id"], name="FK_knowledge_bases_user_id_users"
        ),
        sa.PrimaryKeyConstraint("id", name="PK_knowledge_bases"),
        schema=S,
    )
    op.create_index("IX_knowledge_bases_user_id", "knowledge_bases", ["user_id"], schema=S)
    op.create_table(
        "knowledge_documents",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("base_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("title", sa.Unicode(300), nullable=False),
        sa.Column("filename", sa.Unicode(255), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("content_type", sa.String(100), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("storage_key", sa.String(100), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("error", sa.Unicode(2000), nullable=True),
        sa.Column("pages", sa.Integer(), nullable=True),
        sa.Column("chars", sa.Integer(), nullable=True),
        sa.Column("chunks_total", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("chunks_done", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("embedding_model", sa.String(200), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("lease_token", sa.Uuid(), nullable=True),
        sa.Column("locked_until", UTCDateTime(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=True),
        sa.Column("ready_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["base_id"],
            [f"{S}.knowledge_bases.id"],
            name="FK_knowledge_documents_base_id_knowledge_bases",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], [f"{S}.users.id"], name="FK_knowledge_documents_user_id_users"
        ),
        sa.PrimaryKeyConstraint("id", name="PK_knowledge_documents"),
        sa.UniqueConstraint("storage_key", name="UQ_knowledge_documents_storage_key"),
        schema=S,
    )
    op.create_index("IX_knowledge_documents_base_id", "knowledge_documents", ["base_id"], schema=S)
    op.create_index("IX_knowledge_documents_status", "knowledge_documents", ["status"], schema=S)


def downgrade() -> None:
    op.drop_index("IX_knowledge_documents_status", table_name="knowledge_documents", schema=S)
    op.drop_index("IX_knowledge_documents_base_id", table_name="knowledge_documents", schema=S)
    op.drop_table("knowledge_documents", schema=S)
    op.drop_index("IX_knowledge_bases_user_id", table_name="knowledge_bases", schema=S)
    op.drop_table("knowledge_bases", schema=S)
    op.drop_column("agents", "knowledge_base_ids", schema=real_schema())
