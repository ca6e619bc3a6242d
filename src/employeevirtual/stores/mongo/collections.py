"""The seed's collections and indexes, created idempotently at start."""

from __future__ import annotations

from typing import Any

from pymongo import ASCENDING, DESCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase

__all__ = ["INDEXES", "SHARD_KEYS", "Collections", "ensure_indexes"]

Document = dict[str, Any]


class Collections:
    CHAT_CONVERSATIONS = "chat_conversations"
    CHAT_MESSAGES = "chat_messages"
    CHAT_ANALYTICS = "chat_analytics"
    USER_ACTIVITIES = "user_activities"
    SYSTEM_LOGS = "system_logs"
    ANALYTICS_DAILY = "analytics_daily"  # rollups: one document per day x agent x user x model
    ANALYTICS_STATE = "analytics_state"  # the rollups' progress and the days to roll again
    USER_MEMORIES = "user_memories"  # memory (issue 18): one document per memory


# The shard keys for a sharded cluster (docs/deploy.md), hashed. A conversation's messages live
# on one shard, and every unique index must hold the shard key (MongoDB enforces uniqueness per
# shard only): tests/unit/test_shard_keys.py checks INDEXES against this. chat_conversations is
# keyed by ``_id`` (the conversation id), which its upserts filter on.
SHARD_KEYS: dict[str, str] = {
    "chat_conversations": "_id",
    "chat_messages": "conversation_id",
}

INDEXES: dict[str, list[IndexModel]] = {
    Collections.CHAT_CONVERSATIONS: [
        IndexModel([("user_id", ASCENDING), ("metadata.last_activity", DESCENDING)]),
        IndexModel([("agent_id", ASCENDING), ("metadata.status", ASCENDING)]),
        IndexModel([("metadata.status", ASCENDING), ("metadata.created_at", DESCENDING)]),
    ],
    Collections.CHAT_MESSAGES: [
        IndexModel([("conversation_id", ASCENDING), ("timestamp", DESCENDING)]),
        IndexModel([("user_id", ASCENDING), ("message_type", ASCENDING)]),
        # one document per (conversation, seq): a replayed message can never be stored twice
        IndexModel([("conversation_id", ASCENDING), ("seq", ASCENDING)], unique=True),
    ],
    Collections.CHAT_ANALYTICS: [
        IndexModel([("conversation_id", ASCENDING), ("timestamp", DESCENDING)]),
        IndexModel([("agent_id", ASCENDING), ("timestamp", DESCENDING)]),
        # analytics: today's raw runs, and a user's own
        IndexModel([("timestamp", ASCENDING)]),
        IndexModel([("user_id", ASCENDING), ("timestamp", ASCENDING)]),
    ],
    Collections.ANALYTICS_DAILY: [
        IndexModel([("day", ASCENDING)]),
        IndexModel([("user_id", ASCENDING), ("day", ASCENDING)]),
        IndexModel([("agent_id", ASCENDING), ("day", ASCENDING)]),
    ],
    Collections.USER_ACTIVITIES: [
        IndexModel([("user_id", ASCENDING), ("timestamp", DESCENDING)]),
    ],
    Collections.USER_MEMORIES: [
        IndexModel([("user_id", ASCENDING), ("agent_id", ASCENDING)]),
        IndexModel([("conversation_id", ASCENDING)]),
    ],
    Collections.SYSTEM_LOGS: [
        IndexModel([("timestamp", DESCENDING)]),
        IndexModel([("level", ASCENDING), ("timestamp", DESCENDING)]),
        # a person's erasure deletes the logs naming them (people/registry.py): without it, a
        # scan of every log (under the collection's lock on SecantusDB); sparse, as few do
        IndexModel([("details.user_id", ASCENDING)], sparse=True),
    ],
}


async def ensure_indexes(db: AsyncDatabase[Document]) -> None:
    for name, indexes in INDEXES.items():
        await db[name].create_indexes(indexes)
