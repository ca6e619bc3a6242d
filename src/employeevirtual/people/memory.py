"""Memory as personal data (issue 18): the person's memories and the summaries of their
conversations in the export (from SQL, the truth), and gone with the erasure from both stores.

A conversation's summaries and its own memories already go with the conversation (the
erasure's first step deletes each conversation); what this source erases is the rest: memories
shared across an agent's conversations, and every MongoDB copy of them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from pymongo.asynchronous.database import AsyncDatabase
from sqlalchemy.ext.asyncio import AsyncEngine

from employeevirtual.people.pages import PAGE, keyset_pages
from employeevirtual.people.registry import MongoSource, PersonalDataRegistry
from employeevirtual.stores.mongo.collections import Collections
from employeevirtual.stores.sql.engine import write_transaction
from employeevirtual.stores.sql.memory import MemoryReader, MemoryRepository

__all__ = ["MemorySource", "SummarySource", "register_memory"]


@dataclass(frozen=True, slots=True)
class MemorySource:
    engine: AsyncEngine
    name: str = "memories"

    async def export(self, user_id: UUID) -> AsyncIterator[dict[str, Any]]:
        pages = keyset_pages(
            self.engine,
            lambda conn, after: MemoryReader(conn).of_user(user_id, after=after, limit=PAGE),
            lambda row: row["id"],
        )
        async for rows in pages:
            for row in rows:
                yield row

    async def erase(self, user_id: UUID) -> None:
        async with write_transaction(self.engine) as conn:
            await MemoryRepository(conn).delete_for_user(user_id)


@dataclass(frozen=True, slots=True)
class SummarySource:
    engine: AsyncEngine
    name: str = "conversation_summaries"

    async def export(self, user_id: UUID) -> AsyncIterator[dict[str, Any]]:
        pages = keyset_pages(
            self.engine,
            lambda conn, after: MemoryReader(conn).summaries_of_user(
                user_id, after=after, limit=PAGE
            ),
            lambda row: (row["conversation_id"], row["version"]),
        )
        async for rows in pages:
            for row in rows:
                yield row

    async def erase(self, user_id: UUID) -> None:
        pass  # with their conversations, and by MemorySource.erase


def register_memory(
    registry: PersonalDataRegistry, engine: AsyncEngine, db: AsyncDatabase[dict[str, Any]]
) -> None:
    registry.register(MemorySource(engine))
    registry.register(SummarySource(engine))
    # MongoDB's copies (exported from SQL above)
    registry.register(MongoSource(db, Collections.USER_MEMORIES, ""))
