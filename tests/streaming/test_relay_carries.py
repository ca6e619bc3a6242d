"""The relay carries the new fields like any other: tool calls and their results, a cancelled
or superseding answer's metadata, and an edited message's is_edited/edited_at."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx

from employeevirtual.runtime import Runtime
from employeevirtual.stores.mongo.secantus import SecantusServer
from support.api import create_agent, register_and_login
from support.stores import mongo_failing, mongo_messages, sql_messages


async def test_the_relay_carries_tool_calls_and_edits(
    client: httpx.AsyncClient, runtime: Runtime, secantus: SecantusServer
) -> None:
    headers = await register_and_login(client)
    agent = await create_agent(client, headers, model="offline", tools=["calculator"])
    async with mongo_failing(secantus.url):
        r = await client.post(
            "/api/chat/agent",
            json={"message": "2 * 21", "agent_id": agent["id"]},
            headers=headers,
        )
        assert r.status_code == 200, r.text
        first = r.json()
        cid = first["conversation_id"]
        r = await client.patch(
            f"/api/conversations/{cid}/messages/{first['user_message']['id']}",
            json={"content": "6 * 7"},
            headers=headers,
        )
        assert r.status_code == 200, r.text
        edited = r.json()
        assert await mongo_messages(runtime, cid) == {}
    await runtime.acks.flush()
    await runtime.relay.run_once(now=datetime.now(UTC) + timedelta(minutes=1))  # past the grace
    assert await mongo_messages(runtime, cid) == await sql_messages(runtime, cid)
    docs = {d["_id"]: d async for d in runtime.documents.messages.find({"conversation_id": cid})}
    calls = docs[first["agent_message"]["id"]]["metadata"]["tool_calls"]
    assert calls[0]["name"] == "calculator" and calls[0]["result"] == "42"
    new_user = docs[edited["user_message"]["id"]]
    assert new_user["is_edited"] is True and new_user["edited_at"] is not None
    assert new_user["metadata"]["supersedes"] == [first["user_message"]["id"]]
    answer = docs[edited["agent_message"]["id"]]
    assert answer["metadata"]["supersedes"] == [first["agent_message"]["id"]]
    assert answer["metadata"]["tool_calls"][0]["args"] == {"expression": "6 * 7"}
    # the history, served from MongoDB now, shows the same
    history = (await client.get(f"/api/conversations/{cid}/messages", headers=headers)).json()
    assert history["source"] == "mongodb"
    assert history["messages"][0]["content"] == "6 * 7"
    assert history["messages"][0]["is_edited"] is True
