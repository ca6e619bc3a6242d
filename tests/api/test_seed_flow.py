"""The customer's flow end to end over HTTP, then both databases read directly."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from sqlalchemy import text

from employeevirtual.runtime import Runtime
from support.api import create_agent, register_and_login


async def _sql_rows(runtime: Runtime, query: str, **params: Any) -> list[dict[str, Any]]:
    async with runtime.engine.connect() as conn:
        result = await conn.execute(text(query), params)
        return [dict(r._mapping) for r in result]


async def test_seed_flow_writes_both_stores(client: httpx.AsyncClient, runtime: Runtime) -> None:
    headers = await register_and_login(client)
    agent = await create_agent(client, headers, tools=["calculator", "current_datetime"])

    r = await client.post(
        "/api/chat/agent", params={"message": "ola", "agent_id": agent["id"]}, headers=headers
    )
    assert r.status_code == 200, r.text
    first = r.json()
    conversation_id = first["conversation_id"]
    assert first["user_message"]["content"] == "ola"
    assert first["user_message"]["message_type"] == "user"
    reply = first["agent_message"]
    assert reply["message_type"] == "agent"
    assert reply["agent_id"] == agent["id"]
    assert "offline model" in reply["content"]
    assert set(reply["metadata"]) >= {
        "model_used",
        "execution_time",
        "tokens_used",
        "input_tokens",
        "output_tokens",
        "cost",
        "timestamp",
    }
    assert reply["metadata"]["model_used"] == "offline"
    assert first["usage"]["total_tokens"] == reply["metadata"]["tokens_used"] > 0

    r = await client.post(
        "/api/chat/agent",
        json={"message": "e agora?", "conversation_id": conversation_id},
        headers=headers,
    )
    assert r.status_code == 200, r.text
    assert r.json()["conversation_id"] == conversation_id
    assert "message 2 of this conversation" in r.json()["agent_message"]["content"]

    r = await client.get(f"/api/conversations/{conversation_id}/messages", headers=headers)
    assert r.status_code == 200, r.text
    history = r.json()
    assert history["source"] == "mongodb"
    assert [m["content"] for m in history["messages"]][::2] == ["ola", "e agora?"]
    assert [m["seq"] for m in history["messages"]] == [1, 2, 3, 4]
    assert history["next_before"] is None

    # -- SQL: the seed's columns ---------------------------------------------------------------
    cid = uuid.UUID(conversation_id)
    conv = (
        await _sql_rows(runtime, "SELECT * FROM conversations WHERE id = :id", id=cid.hex)
        if runtime.engine.dialect.name == "sqlite"
        else await _sql_rows(
            runtime,
            f"SELECT * FROM {runtime.settings.database_schema}.conversations WHERE id = :id",
            id=cid,
        )
    )
    assert len(conv) == 1
    row = conv[0]
    assert row["title"] == "Conversa com Assistente"
    assert row["status"] == "active"
    assert row["message_count"] == 4
    assert row["last_message_at"] is not None
    assert row["created_at"] is not None
    for column in ("session_id", "metadata", "updated_at", "user_id", "agent_id"):
        assert column in row
    schema = (
        "" if runtime.engine.dialect.name == "sqlite" else runtime.settings.database_schema + "."
    )
    messages = await _sql_rows(
        runtime,
        f"SELECT * FROM {schema}messages WHERE conversation_id = :id ORDER BY seq",
        id=cid.hex if runtime.engine.dialect.name == "sqlite" else cid,
    )
    assert [m["message_type"] for m in messages] == ["user", "agent", "user", "agent"]
    assert [m["seq"] for m in messages] == [1, 2, 3, 4]
    for m in messages:
        assert set(m) >= {
            "id",
            "conversation_id",
            "user_id",
            "agent_id",
            "content",
            "message_type",
            "message_metadata",
            "created_at",
            "edited_at",
            "is_edited",
        }
        assert not m["is_edited"]

    # -- MongoDB: the seed's document fields --------------------------------------------------
    await runtime.acks.flush()
    db = runtime.documents.db
    doc = await db.chat_conversations.find_one({"_id": conversation_id})
    assert doc is not None
    assert doc["conversation_id"] == conversation_id
    assert doc["title"] == "Conversa com Assistente"
    assert doc["agent_id"] == agent["id"]
    # the seed's context: session_data says where the conversation came from (issue 18); the
    # summary (conversation_state) appears only once the conversation outgrows the window
    assert doc["context"] == {
        "session_data": {"channel": "api", "client": doc["context"]["session_data"]["client"]}
    }
    assert doc["context"]["session_data"]["client"].startswith("python-httpx/")
    meta = doc["metadata"]
    assert meta["message_count"] == 4
    assert meta["status"] == "active"
    assert meta["total_tokens"] == row["total_tokens"] > 0
    for field in ("created_at", "last_activity", "total_cost", "avg_response_time"):
        assert field in meta
    assert [m["message_type"] for m in doc["messages"]] == ["user", "agent", "user", "agent"]
    assert doc["messages"][1]["metadata"]["model_used"] == "offline"
    stored = await db.chat_messages.find({"conversation_id": conversation_id}).to_list()
    assert sorted(m["seq"] for m in stored) == [1, 2, 3, 4]
    assert {m["_id"] for m in stored} == {str(m["id"]).replace("-", "") for m in messages} or {
        m["_id"] for m in stored
    } == {str(uuid.UUID(str(m["id"]))) for m in messages}
    analytics = await db.chat_analytics.find({"conversation_id": conversation_id}).to_list()
    assert len(analytics) == 2
    assert {a["status"] for a in analytics} == {"success"}
    assert all(a["model"] == "offline" and a["output_tokens"] > 0 for a in analytics)
    activities = await db.user_activities.find({"activity": "conversation_created"}).to_list()
    assert [a["details"]["conversation_id"] for a in activities] == [conversation_id]
    assert await db.user_activities.count_documents({"activity": "login"}) == 1

    # the turn was acknowledged in SQL as synced
    r = await client.get(f"/api/conversations/{conversation_id}", headers=headers)
    assert r.json()["needs_sync"] is False
