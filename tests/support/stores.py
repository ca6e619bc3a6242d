"""Reading both stores directly, and breaking them for real (SecantusDB fail points)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any
from uuid import UUID

from pymongo import AsyncMongoClient
from sqlalchemy import select

from employeevirtual.runtime import Runtime
from employeevirtual.stores.mongo.documents import DocumentStore
from employeevirtual.stores.mongo.memory import MemoryDocuments
from employeevirtual.stores.records import ConversationRecord, MessageRecord, TurnUsage
from employeevirtual.stores.sql.memory import MemoryRecord
from employeevirtual.stores.sql.tables import conversations, messages

Meanwhile = Callable[[], Awaitable[None]]


class InsertLater(DocumentStore):
    """A store whose next insert (of messages or of ``chat_analytics`` documents, or a turn's
    write: its messages and its conversation document) comes late: ``meanwhile`` (what another
    process does in the window) runs once, after the caller read or committed SQL, before that
    insert: another server's sync-ack flush, a relay pass, a repair, a turn's MongoDB write."""

    def __init__(self, store: DocumentStore) -> None:
        super().__init__(store.db, window=store.window)
        self.meanwhile: Meanwhile | None = None

    async def _late(self) -> None:
        meanwhile, self.meanwhile = self.meanwhile, None
        if meanwhile is not None:
            await meanwhile()

    async def write_turn(
        self,
        conversation: ConversationRecord,
        messages: Sequence[MessageRecord],
        usage: TurnUsage | None,
    ) -> bool:
        await self._late()
        return await super().write_turn(conversation, messages, usage)

    async def insert_messages(self, docs: Sequence[dict[str, Any]]) -> None:
        await self._late()
        await super().insert_messages(docs)

    async def insert_analytics_many(self, docs: Sequence[dict[str, Any]]) -> None:
        await self._late()
        await super().insert_analytics_many(docs)


class PutLater(MemoryDocuments):
    """``InsertLater`` for the memory copies (``user_memories``): ``meanwhile`` runs once
    before the next ``put_memory``."""

    def __init__(self, documents: DocumentStore) -> None:
        super().__init__(documents.db)
        self.meanwhile: Meanwhile | None = None

    async def put_memory(self, memory: MemoryRecord) -> None:
        meanwhile, self.meanwhile = self.meanwhile, None
        if meanwhile is not None:
            await meanwhile()
        await super().put_memory(memory)


@asynccontextmanager
async def mongo_failing(
    url: str, commands: Sequence[str] = ("insert", "update"), *, code: int = 8
) -> AsyncIterator[None]:
    """Every listed command fails on the server (``configureFailPoint failCommand``) until exit."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(url)
    try:
        await client.admin.command(
            {
                "configureFailPoint": "failCommand",
                "mode": "alwaysOn",
                "data": {"failCommands": list(commands), "errorCode": code},
            }
        )
        yield
    finally:
        await client.admin.command({"configureFailPoint": "failCommand", "mode": "off"})
        await client.close()


async def sql_messages(runtime: Runtime, conversation_id: UUID | str) -> dict[str, int]:
    """message id -> seq, as SQL holds them."""
    m = messages.c
    async with runtime.engine.connect() as conn:
        rows = await conn.execute(
            select(m.id, m.seq).where(m.conversation_id == UUID(str(conversation_id)))
        )
        return {str(r[0]): r[1] for r in rows}


async def mongo_messages(runtime: Runtime, conversation_id: UUID | str) -> dict[str, int]:
    """message id -> seq, as chat_messages holds them."""
    cursor = runtime.documents.messages.find({"conversation_id": str(conversation_id)})
    return {d["_id"]: d["seq"] async for d in cursor}


async def sync_state(runtime: Runtime, conversation_id: UUID | str) -> tuple[int, int]:
    """(synced_seq, message_count) of a conversation in SQL."""
    c = conversations.c
    async with runtime.engine.connect() as conn:
        row = (
            await conn.execute(
                select(c.synced_seq, c.message_count).where(c.id == UUID(str(conversation_id)))
            )
        ).one()
    return row[0], row[1]
