"""MongoDB's copies of memory (issue 18): each memory as a ``user_memories`` document, and a
conversation's current summary as ``context.conversation_state`` of its ``chat_conversations``
document. Every write is guarded by the SQL version it carries, so replays and late writers
never put an older version over a newer one."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any
from uuid import UUID

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from employeevirtual.stores.mongo.collections import Collections
from employeevirtual.stores.sql.memory import MemoryRecord
from employeevirtual.stores.sql.summaries import SummaryRecord

__all__ = ["MemoryDocuments", "conversation_state", "memory_document"]

Document = dict[str, Any]


def memory_document(memory: MemoryRecord) -> Document:
    return {
        "_id": str(memory.id),
        "user_id": str(memory.user_id),
        "agent_id": str(memory.agent_id),
        "conversation_id": str(memory.conversation_id) if memory.conversation_id else None,
        "scope": "conversation" if memory.conversation_id else "agent",
        "content": memory.content,
        "source": {
            "message_id": str(memory.source_message_id) if memory.source_message_id else None,
            "conversation_id": (
                str(memory.source_conversation_id) if memory.source_conversation_id else None
            ),
            "tool_call_id": memory.source_tool_call,
        },
        "version": memory.version,
        "created_at": memory.created_at,
        "updated_at": memory.updated_at,
    }


def conversation_state(summary: SummaryRecord) -> Document:
    """The seed's ``context.conversation_state``: the rolling summary and what it covers."""
    return {
        "summary": summary.content,
        "covered_seq": summary.covered_seq,
        "version": summary.version,
        "model": summary.model,
        "updated_at": summary.created_at,
    }


class MemoryDocuments:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.memories = db[Collections.USER_MEMORIES]
        self.conversations = db[Collections.CHAT_CONVERSATIONS]

    async def put_memory(self, memory: MemoryRecord) -> None:
        """Upsert this version unless a newer one is there (E11000 from the guarded upsert)."""
        doc = memory_document(memory)
        with contextlib.suppress(DuplicateKeyError):  # the same or a newer version is there
            await self.memories.replace_one(
                {"_id": doc["_id"], "version": {"$lt": memory.version}}, doc, upsert=True
            )

    async def delete_memory(self, memory_id: UUID) -> None:
        await self.memories.delete_one({"_id": str(memory_id)})

    async def delete_memories(self, memory_ids: Sequence[str]) -> None:
        if memory_ids:
            await self.memories.delete_many({"_id": {"$in": list(memory_ids)}})

    async def versions_after(self, after: str | None, limit: int) -> list[tuple[str, int]]:
        """(id, version) of the memory documents, by id, a page at a time."""
        match: Document = {} if after is None else {"_id": {"$gt": after}}
        cursor = self.memories.find(match, {"version": 1}).sort("_id").limit(limit)
        return [(d["_id"], int(d.get("version") or 0)) async for d in cursor]

    async def count(self) -> int:
        return int(await self.memories.count_documents({}))

    async def set_state(self, summary: SummaryRecord) -> bool:
        """``context.conversation_state`` of an existing conversation document, unless it
        already holds this version or a newer one; False when no document took it (none yet:
        the relay's rebuild of the conversation document carries the summary)."""
        state = conversation_state(summary)
        # "$not: $gte" is "older or absent" in one predicate beside ``_id``: SecantusDB (the
        # embedded default) answers an ``_id`` with a top-level ``$or`` by scanning the whole
        # collection under its lock (19 ms at 3,000 conversations, against 0.5 ms)
        result = await self.conversations.update_one(
            {
                "_id": str(summary.conversation_id),
                "context.conversation_state.version": {"$not": {"$gte": summary.version}},
            },
            {"$set": {"context.conversation_state": state}},
        )
        return bool(result.matched_count)
