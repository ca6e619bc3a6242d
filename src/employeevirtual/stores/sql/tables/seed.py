"""The seed's tables: users, agents, conversations, their messages (the audit copy) and the
audit trail."""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
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
    false,
    text,
    true,
)

from employeevirtual.stores.sql.tables.schema import metadata
from employeevirtual.stores.sql.types import JSONDocument, UTCDateTime

__all__ = ["agents", "audit_log", "conversations", "messages", "users"]


users = Table(
    "users",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("email", String(320), nullable=False, unique=True),
    Column("name", Unicode(200), nullable=False),
    Column("password_hash", String(255), nullable=False),
    Column("role", String(20), nullable=False, server_default="user"),
    Column("is_active", Boolean, nullable=False, server_default=true()),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=True),
)

agents = Table(
    "agents",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("user_id", Uuid, ForeignKey("empl.users.id"), nullable=False),
    Column("name", Unicode(200), nullable=False),
    Column("description", Unicode(2000), nullable=True),
    Column("instructions", Unicode(), nullable=False),
    Column("model", String(200), nullable=False),
    Column("model_settings", JSONDocument, nullable=True),
    Column("tools", JSONDocument, nullable=True),
    Column("visibility", String(20), nullable=False, server_default="private"),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=True),
    # the knowledge bases the agent may search (issue 12): a JSON list of ids, like tools
    Column("knowledge_base_ids", JSONDocument, nullable=True),
    # agents are soft-deleted so past conversations keep their foreign key
    Column("deleted_at", UTCDateTime, nullable=True),
    # the agents this one may ask (issue 13): a JSON list of ids, checked for cycles on save
    Column("delegate_ids", JSONDocument, nullable=True),
    # memory (issue 18): {"enabled": bool, "shared": bool}; null means the defaults
    Column("memory", JSONDocument, nullable=True),
    Index("IX_agents_user_id", "user_id"),
)

conversations = Table(
    "conversations",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("user_id", Uuid, ForeignKey("empl.users.id"), nullable=False),
    Column("agent_id", Uuid, ForeignKey("empl.agents.id"), nullable=False),
    Column("title", Unicode(200), nullable=True),
    Column("status", String(50), nullable=False, server_default="active"),
    Column("session_id", String(100), nullable=True),
    Column("metadata", JSONDocument, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=True),
    Column("last_message_at", UTCDateTime, nullable=True),
    # seq of the newest message; every message's seq is 1..message_count without gaps
    Column("message_count", Integer, nullable=False, server_default=text("0")),
    Column("total_tokens", Integer, nullable=False, server_default=text("0")),
    Column("total_cost", Numeric(18, 8), nullable=False, server_default=text("0")),
    Column("total_response_time", Numeric(18, 6), nullable=False, server_default=text("0")),
    Column("agent_runs", Integer, nullable=False, server_default=text("0")),
    # highest seq known to be in MongoDB; below message_count means the relay owes a write
    Column("synced_seq", Integer, nullable=False, server_default=text("0")),
    Column("last_error", Unicode(2000), nullable=True),
    Index("IX_conversations_user_id", "user_id"),
    Index("IX_conversations_agent_id", "agent_id"),
    Index("IX_conversations_status", "status"),
    Index("IX_conversations_last_message", "last_message_at"),
    Index("IX_conversations_user_cost", "user_id", "total_cost"),  # the list by cost
    # the relay's work list (not on SQL Server: its filtered indexes cannot compare columns)
    Index(
        "IX_conversations_unsynced",
        "last_message_at",
        postgresql_where=text("synced_seq < message_count"),
        sqlite_where=text("synced_seq < message_count"),
    ),
)

messages = Table(
    "messages",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("conversation_id", Uuid, ForeignKey("empl.conversations.id"), nullable=False),
    Column("user_id", Uuid, nullable=False),
    Column("agent_id", Uuid, nullable=True),
    Column("content", Unicode(), nullable=False),
    Column("message_type", String(50), nullable=False),
    Column("message_metadata", JSONDocument, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("edited_at", UTCDateTime, nullable=True),
    Column("is_edited", Boolean, nullable=False, server_default=false()),
    Column("seq", Integer, nullable=False),
    UniqueConstraint("conversation_id", "seq", name="UQ_messages_conversation_seq"),
    Index("IX_messages_conversation_id", "conversation_id"),
    Index("IX_messages_user_id", "user_id"),
    Index("IX_messages_type", "message_type"),
    # the conversations an agent took part in (issue 13: handoffs)
    Index("IX_messages_conversation_agent", "conversation_id", "agent_id"),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("actor_id", Uuid, nullable=True),
    Column("action", String(100), nullable=False),
    Column("target_type", String(50), nullable=True),
    Column("target_id", String(100), nullable=True),
    Column("details", JSONDocument, nullable=True),
    Column("client_ip", String(64), nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Index("IX_audit_log_actor_id", "actor_id"),
    Index("IX_audit_log_created_at", "created_at"),
)
