"""Where a person's data lives beyond the core tables, so export and erasure reach all of it.

Each domain that keeps data about a person registers a source: the export writes its records
as one JSON Lines file, and the erasure calls its ``erase``. The core (profile, agents,
conversations, messages, API keys, audit rows) is the exporter's own; MongoDB collections keyed
by ``user_id`` are registered here at start-up, and later domains (knowledge, memory, feedback,
tool calls) add theirs the same way (``Runtime.personal_data.register(...)``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol
from uuid import UUID

from pymongo.asynchronous.database import AsyncDatabase

from employeevirtual.stores.mongo.collections import Collections
from employeevirtual.stores.mongo.people import delete_for, documents_of

__all__ = ["MongoSource", "PersonalDataRegistry", "PersonalDataSource", "default_registry"]

Document = dict[str, Any]


class PersonalDataSource(Protocol):
    @property
    def name(self) -> str:
        """The export's file name (``<name>.jsonl``); empty: erased but not exported (a copy of
        data the export already holds from SQL)."""
        ...

    def export(self, user_id: UUID) -> AsyncIterator[Document]: ...

    async def erase(self, user_id: UUID) -> None: ...


@dataclass(frozen=True, slots=True)
class MongoSource:
    db: AsyncDatabase[Document]
    collection: str
    name: str
    field: str = "user_id"

    async def export(self, user_id: UUID) -> AsyncIterator[Document]:
        async for doc in documents_of(self.db, self.collection, self.field, str(user_id)):
            yield doc

    async def erase(self, user_id: UUID) -> None:
        await delete_for(self.db, self.collection, self.field, str(user_id))


class PersonalDataRegistry:
    def __init__(self) -> None:
        self._sources: list[PersonalDataSource] = []

    def register(self, source: PersonalDataSource) -> None:
        self._sources.append(source)

    def __iter__(self) -> Any:
        return iter(list(self._sources))

    @property
    def exported(self) -> list[PersonalDataSource]:
        return [s for s in self._sources if s.name]


def default_registry(db: AsyncDatabase[Document]) -> PersonalDataRegistry:
    registry = PersonalDataRegistry()
    # the MongoDB copies of the conversations and messages: the export takes them from SQL
    registry.register(MongoSource(db, Collections.CHAT_CONVERSATIONS, ""))
    registry.register(MongoSource(db, Collections.CHAT_MESSAGES, ""))
    registry.register(MongoSource(db, Collections.CHAT_ANALYTICS, "usage"))
    registry.register(MongoSource(db, Collections.USER_ACTIVITIES, "user_activities"))
    # the analytics rollups (one document per day x agent x user x model)
    registry.register(MongoSource(db, Collections.ANALYTICS_DAILY, "usage_daily"))
    # system logs name no user today; any that does carries it under details.user_id
    registry.register(MongoSource(db, Collections.SYSTEM_LOGS, "", field="details.user_id"))
    return registry
