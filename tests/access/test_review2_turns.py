"""Second security review, turn paths: a deactivated user gets nothing from an Idempotency-Key
(item 3), and an agent made private stops serving others' conversations (item 4)."""

from __future__ import annotations

import httpx

from employeevirtual.runtime import Runtime
from support.access import account
from support.api import create_agent


async def test_deactivated_user_gets_no_replay_and_no_key_probe(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    admin = await account(client, name="Admin")  # the first account is the admin
    user = await account(client, name="Bea")
    agent = await create_agent(client, user.headers)
    body = {"message": "hello", "agent_id": agent["id"]}
    key = {"Idempotency-Key": "k-replay-1"}
    r = await client.post("/api/chat/agent", json=body, headers={**user.headers, **key})
    assert r.status_code == 200, r.text
    r = await client.patch(
        f"/api/admin/users/{user.id}", json={"is_active": False}, headers=admin.headers
    )
    assert r.status_code == 200, r.text
    # the same request replays nothing, and another body does not reveal that the key exists
    replay = await client.post("/api/chat/agent", json=body, headers={**user.headers, **key})
    assert replay.status_code == 401, replay.text
    assert "deactivated" in replay.json()["detail"]
    other = {"message": "something else", "agent_id": agent["id"]}
    probe = await client.post("/api/chat/agent", json=other, headers={**user.headers, **key})
    assert probe.status_code == 401, probe.text
    # and a streamed retry of the key is refused the same way
    sse = {**user.headers, **key, "Accept": "text/event-stream"}
    r = await client.post("/api/chat/agent", json=body, headers=sse)
    assert r.status_code == 401, r.text


async def test_agent_made_private_stops_serving_other_users_conversations(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    await account(client, name="Admin")
    owner = await account(client, name="Olga")
    other = await account(client, name="Paulo")
    agent = await create_agent(client, owner.headers, visibility="shared")
    r = await client.post(
        "/api/chat/agent", json={"message": "hi", "agent_id": agent["id"]}, headers=other.headers
    )
    assert r.status_code == 200, r.text
    cid = r.json()["conversation_id"]
    r = await client.patch(
        f"/api/agents/{agent['id']}",
        json={"visibility": "private", "instructions": "Now private: secret playbook."},
        headers=owner.headers,
    )
    assert r.status_code == 200, r.text
    r = await client.post(
        "/api/chat/agent", json={"message": "again", "conversation_id": cid}, headers=other.headers
    )
    assert r.status_code == 403, r.text
    assert "no longer shared" in r.json()["detail"]
    # nothing was written, and the conversation stays readable to its owner
    r = await client.get(f"/api/conversations/{cid}/messages", headers=other.headers)
    assert r.status_code == 200 and len(r.json()["messages"]) == 2
    # the agent's owner still chats with it
    r = await client.post(
        "/api/chat/agent", json={"message": "mine", "agent_id": agent["id"]}, headers=owner.headers
    )
    assert r.status_code == 200, r.text
    # shared again: the other user's conversation continues
    r = await client.patch(
        f"/api/agents/{agent['id']}", json={"visibility": "shared"}, headers=owner.headers
    )
    r = await client.post(
        "/api/chat/agent", json={"message": "back", "conversation_id": cid}, headers=other.headers
    )
    assert r.status_code == 200, r.text
