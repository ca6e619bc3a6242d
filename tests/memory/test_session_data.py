"""``context.session_data``: the channel and client a conversation came from, in SQL (the
conversation's metadata) and in its MongoDB document, kept when the relay rebuilds it; never a
credential."""

from __future__ import annotations

import uuid

import httpx
from sqlalchemy import select

from employeevirtual.runtime import Runtime
from employeevirtual.stores.sql import tables
from employeevirtual.stores.sql.engine import read_connection
from employeevirtual.stores.sql.sync import SyncReader
from support.api import create_agent, register_and_login


async def _metadata(runtime: Runtime, cid: str) -> dict[str, object]:
    c = tables.conversations.c
    async with runtime.engine.connect() as conn:
        row = (await conn.execute(select(c.metadata).where(c.id == uuid.UUID(cid)))).one()
    return dict(row[0] or {})


async def test_session_data_names_channel_and_client_never_a_secret(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    headers = await register_and_login(client)
    agent = await create_agent(client, headers)
    token = headers["Authorization"].split()[1]
    r = await client.post(
        "/api/chat/agent",
        json={"message": "hello", "agent_id": agent["id"]},
        headers={**headers, "X-Client": "ev-console/1.2", "User-Agent": "Mozilla/5.0 (X11)"},
    )
    assert r.status_code == 200, r.text
    plain = r.json()["conversation_id"]
    r = await client.post(
        "/api/chat/agent",
        json={"message": "hello", "agent_id": agent["id"]},
        headers={**headers, "Accept": "text/event-stream", "User-Agent": "curl/8.5.0"},
    )
    assert r.status_code == 200 and "event: done" in r.text
    streamed = r.headers["X-Conversation-Id"]
    r = await client.post(
        "/v1/chat/completions",
        json={"model": agent["id"], "messages": [{"role": "user", "content": "hi"}]},
        headers={**headers, "User-Agent": "OpenAI/Python 3.57.0"},
    )
    assert r.status_code == 200, r.text
    door = r.headers["X-Conversation-Id"]

    expected = {
        plain: {"channel": "api", "client": "ev-console/1.2"},
        streamed: {"channel": "stream", "client": "curl/8.5.0"},
        door: {"channel": "openai", "client": "OpenAI/Python"},
    }
    for cid, session in expected.items():
        assert (await _metadata(runtime, cid))["session_data"] == session
        doc = await runtime.documents.conversations.find_one({"_id": cid})
        assert doc is not None and doc["context"]["session_data"] == session
        assert token not in str(doc) and token not in str(await _metadata(runtime, cid))
    # a rebuild from SQL (relay, reconciler) keeps it
    async with read_connection(runtime.engine) as conn:
        record = await SyncReader(conn).get(uuid.UUID(plain))
    assert record is not None
    rebuilt = runtime.documents.conversation_document(record, [])
    assert rebuilt["context"]["session_data"] == expected[plain]
