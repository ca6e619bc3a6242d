"""MongoDB failing after the SQL commit: the turn still succeeds, the conversation is left
needing sync, and its history is served from SQL meanwhile. Replayed writes change nothing."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from pymongo import AsyncMongoClient

from employeevirtual.chat.commit import turn_analytics
from employeevirtual.runtime import Runtime
from employeevirtual.stores.mongo.secantus import SecantusServer
from employeevirtual.stores.records import TurnUsage
from employeevirtual.stores.sql.conversations import ConversationReader
from employeevirtual.stores.sql.engine import read_connection
from employeevirtual.stores.sql.messages import MessageReader
from support.api import create_agent, register_and_login


@pytest.fixture
async def fail_mongo_writes(secantus: SecantusServer) -> AsyncIterator[Any]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(secantus.url)

    async def arm() -> None:
        await client.admin.command(
            {
                "configureFailPoint": "failCommand",
                "mode": "alwaysOn",
                "data": {"failCommands": ["insert", "update"], "errorCode": 2},
            }
        )

    try:
        yield arm
    finally:
        await client.admin.command({"configureFailPoint": "failCommand", "mode": "off"})
        await client.close()


async def test_turn_survives_mongodb_write_failure(
    client: httpx.AsyncClient, runtime: Runtime, fail_mongo_writes: Any
) -> None:
    headers = await register_and_login(client)
    agent = await create_agent(client, headers)
    r = await client.post(
        "/api/chat/agent", params={"message": "ola", "agent_id": agent["id"]}, headers=headers
    )
    cid = r.json()["conversation_id"]
    await runtime.acks.flush()

    await fail_mongo_writes()
    r = await client.post(
        "/api/chat/agent", json={"message": "segunda", "conversation_id": cid}, headers=headers
    )
    assert r.status_code == 200, r.text
    await runtime.acks.flush()
    conversation = (await client.get(f"/api/conversations/{cid}", headers=headers)).json()
    assert conversation["message_count"] == 4
    assert conversation["needs_sync"] is True
    # MongoDB has only the first turn, so the history comes from SQL, complete
    r = await client.get(f"/api/conversations/{cid}/messages", headers=headers)
    history = r.json()
    assert history["source"] == "sql"
    assert [m["seq"] for m in history["messages"]] == [1, 2, 3, 4]
    assert await runtime.documents.messages.count_documents({"conversation_id": cid}) == 2


async def test_replaying_a_turns_writes_changes_nothing(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    headers = await register_and_login(client)
    agent = await create_agent(client, headers)
    r = await client.post(
        "/api/chat/agent", params={"message": "ola", "agent_id": agent["id"]}, headers=headers
    )
    cid = r.json()["conversation_id"]
    r = await client.post(
        "/api/chat/agent", json={"message": "de novo", "conversation_id": cid}, headers=headers
    )
    db = runtime.documents
    await runtime.acks.flush()  # the runs' analytics documents, batched

    async def snapshot() -> tuple[Any, ...]:
        conv = await db.conversations.find_one({"_id": cid})
        msgs = await db.messages.find({"conversation_id": cid}).sort("seq").to_list()
        analytics = await db.analytics.find({"conversation_id": cid}).sort("_id").to_list()
        return conv, msgs, analytics

    before = await snapshot()
    user = await runtime.accounts.get_active(uuid.UUID(before[0]["user_id"]))
    assert user is not None
    async with read_connection(runtime.engine) as conn:
        conversation = await ConversationReader(conn).get(uuid.UUID(cid), user)
        assert conversation is not None
        stored = await MessageReader(conn).page(conversation.id, before_seq=None, limit=10)
    # replay both turns' writes exactly as the service made them
    for turn in (stored[0:2], stored[2:4]):
        usage = TurnUsage(
            model=turn[1].metadata["model_used"],
            input_tokens=turn[1].metadata["input_tokens"],
            output_tokens=turn[1].metadata["output_tokens"],
            cost=turn[1].metadata["cost"],
            execution_time=turn[1].metadata["execution_time"],
        )
        applied = await db.write_turn(conversation, turn, usage)
        assert applied is False  # the guard recognised the replay
        await db.insert_analytics_many(turn_analytics(turn))  # and the flush's insert
    assert await snapshot() == before
    assert before[0]["metadata"]["message_count"] == 4
    assert len(before[1]) == 4 and len(before[2]) == 2
