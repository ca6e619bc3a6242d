"""Memory (issue 18): memories about a person, conversation summaries."""

from __future__ import annotations

from sqlalchemy import Column, ForeignKey, Index, Integer, String, Table, Unicode, Uuid, text

from employeevirtual.stores.sql.tables.schema import metadata
from employeevirtual.stores.sql.types import UTCDateTime

__all__ = ["conversation_summaries", "memories"]


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
