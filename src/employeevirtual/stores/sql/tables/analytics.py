"""Budgets and feedback on answers (issue 14)."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Table,
    Unicode,
    UniqueConstraint,
    Uuid,
    text,
)

from employeevirtual.stores.sql.tables.schema import metadata
from employeevirtual.stores.sql.types import UTCDateTime

__all__ = ["budgets", "message_feedback"]


# Monthly budgets (issue 14), one per user or agent. The row is also the month's counter: the
# turn adds its tokens and cost here in its own transaction (only when a budget exists), and
# ``period`` (YYYY-MM, UTC) says which month ``used_*`` count: a new month starts them again.
budgets = Table(
    "budgets",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("scope", String(10), nullable=False),  # 'user' or 'agent'
    Column("scope_id", Uuid, nullable=False),
    Column("max_cost", Numeric(18, 8), nullable=True),
    Column("max_tokens", BigInteger, nullable=True),
    Column("period", String(7), nullable=False),
    Column("used_cost", Numeric(18, 8), nullable=False, server_default=text("0")),
    Column("used_tokens", BigInteger, nullable=False, server_default=text("0")),
    # highest warning sent this period: 0, 80 or 100 (percent)
    Column("warned_level", Integer, nullable=False, server_default=text("0")),
    Column("created_by", Uuid, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=True),
    UniqueConstraint("scope", "scope_id", name="UQ_budgets_scope"),
)

# Feedback on an agent's answer (issue 14): one per message, a later one replaces it.
# ``synced_at`` is null while MongoDB has not got this version (the relay carries it).
message_feedback = Table(
    "message_feedback",
    metadata,
    Column("message_id", Uuid, ForeignKey("empl.messages.id"), primary_key=True),
    Column("conversation_id", Uuid, ForeignKey("empl.conversations.id"), nullable=False),
    Column("user_id", Uuid, nullable=False),
    Column("rating", String(10), nullable=False),
    Column("comment", Unicode(2000), nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("synced_at", UTCDateTime, nullable=True),
    Index("IX_message_feedback_conversation_id", "conversation_id"),
    Index(
        "IX_message_feedback_unsynced",
        "updated_at",
        postgresql_where=text("synced_at IS NULL"),
        sqlite_where=text("synced_at IS NULL"),
        mssql_where=text("synced_at IS NULL"),
    ),
)
