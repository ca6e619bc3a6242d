"""Reading both stores directly, and breaking them for real (SecantusDB fail points)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any
from uuid import UUID

from pymongo import AsyncMongoClient
from sqlalchemy import select

from employeevirtual.runtime import Runtime
from employeevirtual.stores.sql.tables import conversations, messages


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
