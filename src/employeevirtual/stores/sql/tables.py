"""The relational schema ``empl``: the seed's tables and columns, plus what the service needs.

SQLite has no schemas; the engine maps ``empl`` away with ``schema_translate_map``.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
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

from employeevirtual.stores.sql.types import JSONDocument, UTCDateTime

__all__ = [
    "SCHEMA",
    "agents",
    "api_keys",
    "audit_log",
    "budgets",
    "claims",
    "conversation_summaries",
    "conversations",
    "erasure_jobs",
    "export_jobs",
    "idempotency_keys",
    "knowledge_bases",
    "knowledge_documents",
    "mcp_servers",
    "memories",
    "message_feedback",
    "messages",
    "metadata",
    "server_instances",
    "users",
]

SCHEMA = "empl"

metadata = MetaData(
    schema=SCHEMA,
    naming_convention={
        "ix": "IX_%(table_name)s_%(column_0_N_name)s",
        "uq": "UQ_%(table_name)s_%(column_0_N_name)s",
        "ck": "CK_%(table_name)s_%(constraint_name)s",
        "fk": "FK_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "PK_%(table_name)s",
    },
)

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

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("user_id", Uuid, ForeignKey("empl.users.id"), nullable=False),
    Column("name", Unicode(200), nullable=False),
    # the first characters of the key, shown in listings; the key itself is never stored
    Column("prefix", String(20), nullable=False),
    Column("digest", String(64), nullable=False, unique=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("last_used_at", UTCDateTime, nullable=True),
    Column("revoked_at", UTCDateTime, nullable=True),
    Index("IX_api_keys_user_id", "user_id"),
)

# One row per (user, Idempotency-Key) of POST /api/chat/agent: 'pending' while its owner (``token``)
# holds the lease, 'complete' with the response once the turn committed (same transaction).
idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("user_id", Uuid, ForeignKey("empl.users.id"), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("fingerprint", String(64), nullable=False),
    Column("status", String(20), nullable=False),
    Column("token", Uuid, nullable=False),
    Column("locked_until", UTCDateTime, nullable=True),
    Column("response_status", Integer, nullable=True),
    Column("response_body", Unicode(), nullable=True),
    Column("conversation_id", Uuid, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("completed_at", UTCDateTime, nullable=True),
    # the server instance (server_instances.id) running the request while 'pending'
    Column("owner_id", Uuid, nullable=True),
    Index("IX_idempotency_keys_created_at", "created_at"),
)

# One row per running server process, whatever host it runs on: the liveness an Idempotency-Key's
# owner is judged by. A live server moves ``heartbeat_at`` every few seconds; a clean stop sets
# ``stopped_at``. Rows of servers gone for a day are purged.
server_instances = Table(
    "server_instances",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("hostname", Unicode(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("boot", String(64), nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    Column("heartbeat_at", UTCDateTime, nullable=False),
    Column("stopped_at", UTCDateTime, nullable=True),
    Index("IX_server_instances_heartbeat_at", "heartbeat_at"),
)

# Knowledge (issue 12): bases of documents that agents search. The chunks and vectors live in
# the retrieval engine (knowledge/lance.py); these rows are the metadata and the work list.
knowledge_bases = Table(
    "knowledge_bases",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("user_id", Uuid, ForeignKey("empl.users.id"), nullable=False),
    Column("name", Unicode(200), nullable=False),
    Column("description", Unicode(2000), nullable=True),
    Column("visibility", String(20), nullable=False, server_default="private"),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=True),
    Index("IX_knowledge_bases_user_id", "user_id"),
)

knowledge_documents = Table(
    "knowledge_documents",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("base_id", Uuid, ForeignKey("empl.knowledge_bases.id"), nullable=False),
    Column("user_id", Uuid, ForeignKey("empl.users.id"), nullable=False),
    Column("title", Unicode(300), nullable=False),
    # shown back to the user only; the original is stored under ``storage_key`` (ours)
    Column("filename", Unicode(255), nullable=False),
    Column("kind", String(20), nullable=False),
    Column("content_type", String(100), nullable=False),
    Column("size_bytes", Integer, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("storage_key", String(100), nullable=False, unique=True),
    # queued -> processing -> ready | failed
    Column("status", String(20), nullable=False),
    Column("error", Unicode(2000), nullable=True),
    Column("pages", Integer, nullable=True),
    Column("chars", Integer, nullable=True),
    Column("chunks_total", Integer, nullable=False, server_default=text("0")),
    Column("chunks_done", Integer, nullable=False, server_default=text("0")),
    Column("embedding_model", String(200), nullable=True),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    # the ingestion worker's lease: whoever holds ``lease_token`` until ``locked_until``
    Column("lease_token", Uuid, nullable=True),
    Column("locked_until", UTCDateTime, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=True),
    Column("ready_at", UTCDateTime, nullable=True),
    Index("IX_knowledge_documents_base_id", "base_id"),
    Index("IX_knowledge_documents_status", "status"),
)

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

# One-time claims: a row per name, its primary key making each claim atomic on every backend
# ('first_admin': the first registered account became the admin; nobody else can).
claims = Table(
    "claims",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("claimed_by", Uuid, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
)

# One row per export (GDPR art. 15/20): the ZIP is built in the background into the data dir.
export_jobs = Table(
    "export_jobs",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("user_id", Uuid, ForeignKey("empl.users.id"), nullable=False),
    # who asked: the user, or an admin (then audited)
    Column("requested_by", Uuid, nullable=True),
    Column("status", String(20), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("completed_at", UTCDateTime, nullable=True),
    Column("expires_at", UTCDateTime, nullable=True),
    Column("size_bytes", Integer, nullable=True),
    Column("error", Unicode(2000), nullable=True),
    Index("IX_export_jobs_user_id", "user_id"),
    Index("IX_export_jobs_created_at", "created_at"),
)

# One row per erasure (GDPR art. 17): the job while it runs, the tombstone once done. The
# subject's id is cleared when the job finishes; what stays is a random id, the times, and who
# asked (``requested_by`` 'self' or 'admin', with the admin's id).
erasure_jobs = Table(
    "erasure_jobs",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("user_id", Uuid, nullable=True),
    Column("requested_by", String(20), nullable=False),
    Column("actor_id", Uuid, nullable=True),
    Column("shared_agents", String(20), nullable=False),
    Column("heir_id", Uuid, nullable=True),
    Column("status", String(20), nullable=False),
    Column("step", String(50), nullable=False),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=True),
    Column("completed_at", UTCDateTime, nullable=True),
    Index("IX_erasure_jobs_status", "status"),
    Index("IX_erasure_jobs_user_id", "user_id"),
)

# Memory (issue 18). Facts and preferences an agent keeps about a person: per user and agent
# (``conversation_id`` null: shared by the agent's conversations with that user) or per
# conversation (an agent that does not share memory). A forgotten memory is emptied at once and
# kept as a tombstone (``deleted_at``) until MongoDB's copy is gone; ``synced_version`` below
# ``version`` means MongoDB has not got this version yet (the relay carries it).
memories = Table(
    "memories",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("user_id", Uuid, ForeignKey("empl.users.id"), nullable=False),
    Column("agent_id", Uuid, nullable=False),
    Column("conversation_id", Uuid, nullable=True),
    Column("content", Unicode(), nullable=False),  # at most EV_MEMORY_MAX_CHARS
    # the agent message whose tool call saved it (null: the person wrote it through the API)
    Column("source_message_id", Uuid, nullable=True),
    Column("source_conversation_id", Uuid, nullable=True),
    Column("source_tool_call", String(100), nullable=True),
    Column("version", Integer, nullable=False, server_default=text("1")),
    Column("synced_version", Integer, nullable=False, server_default=text("0")),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("deleted_at", UTCDateTime, nullable=True),
    Index("IX_memories_user_agent", "user_id", "agent_id"),
    Index("IX_memories_conversation_id", "conversation_id"),
    Index(
        "IX_memories_unsynced",
        "updated_at",
        postgresql_where=text("synced_version < version"),
        sqlite_where=text("synced_version < version"),
    ),
)

# A conversation's rolling summary of what fell out of the agent's context window, one row per
# version (the newest is current; a few older ones are kept). ``covered_seq``: the summary
# covers messages 1..covered_seq. ``synced_at`` null: MongoDB's conversation document has not
# got this version (the relay carries it into ``context.conversation_state``).
conversation_summaries = Table(
    "conversation_summaries",
    metadata,
    Column("conversation_id", Uuid, ForeignKey("empl.conversations.id"), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("user_id", Uuid, nullable=False),
    Column("covered_seq", Integer, nullable=False),
    Column("content", Unicode(), nullable=False),
    Column("model", String(200), nullable=False),
    Column("messages", Integer, nullable=False),  # how many messages this version folded in
    Column("created_at", UTCDateTime, nullable=False),
    Column("synced_at", UTCDateTime, nullable=True),
    Index("IX_conversation_summaries_user_id", "user_id"),
    Index(
        "IX_conversation_summaries_unsynced",
        "created_at",
        postgresql_where=text("synced_at IS NULL"),
        sqlite_where=text("synced_at IS NULL"),
        mssql_where=text("synced_at IS NULL"),
    ),
)

# MCP servers an admin registered (issue 13). ``secrets`` is a Fernet token (headers or stdio
# environment), never returned; ``secret_names`` says which names it holds. ``available_to``:
# the user ids that may use it, NULL for every user. ``tool_list``: the tools as last fetched.
mcp_servers = Table(
    "mcp_servers",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("name", String(40), nullable=False),
    Column("description", Unicode(500), nullable=True),
    Column("transport", String(10), nullable=False),
    Column("url", Unicode(2000), nullable=True),
    Column("command_line", JSONDocument, nullable=True),
    Column("secret_names", JSONDocument, nullable=True),
    Column("secrets", String(8000), nullable=True),
    Column("available_to", JSONDocument, nullable=True),
    Column("tool_list", JSONDocument, nullable=True),
    Column("status", String(20), nullable=False, server_default="unknown"),
    Column("status_message", Unicode(1000), nullable=True),
    Column("refreshed_at", UTCDateTime, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    UniqueConstraint("name"),
)
