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

from employeevirtual.people.registry import MongoSource, PersonalDataRegistry
from employeevirtual.stores.mongo.collections import Collections
from employeevirtual.stores.sql.engine import read_connection, write_transaction
from employeevirtual.stores.sql.memory import MemoryReader, MemoryRepository

__all__ = ["MemorySource", "SummarySource", "register_memory"]

PAGE = 500


@dataclass(frozen=True, slots=True)
class MemorySource:
    engine: AsyncEngine
    name: str = "memories"

    async def export(self, user_id: UUID) -> AsyncIterator[dict[str, Any]]:
        after: UUID | None = None
        while True:
            async with read_connection(self.engine) as conn:
                rows = await MemoryReader(conn).of_user(user_id, after=after, limit=PAGE)
            if not rows:
                return
            for row in rows:
                yield row
            after = rows[-1]["id"]

    async def erase(self, user_id: UUID) -> None:
        async with write_transaction(self.engine) as conn:
            await MemoryRepository(conn).delete_for_user(user_id)


@dataclass(frozen=True, slots=True)
class SummarySource:
    engine: AsyncEngine
    name: str = "conversation_summaries"

    async def export(self, user_id: UUID) -> AsyncIterator[dict[str, Any]]:
        after: tuple[UUID, int] | None = None
        while True:
            async with read_connection(self.engine) as conn:
                rows = await MemoryReader(conn).summaries_of_user(user_id, after=after, limit=PAGE)
            if not rows:
                return
            for row in rows:
                yield row
            after = (rows[-1]["conversation_id"], rows[-1]["version"])

    async def erase(self, user_id: UUID) -> None:
        pass  # with their conversations, and by MemorySource.erase


def register_memory(
    registry: PersonalDataRegistry, engine: AsyncEngine, db: AsyncDatabase[dict[str, Any]]
) -> None:
    registry.register(MemorySource(engine))
    registry.register(SummarySource(engine))
    # MongoDB's copies (exported from SQL above)
    registry.register(MongoSource(db, Collections.USER_MEMORIES, ""))
