"""Conversations: listing with filters and cursors, history pages, rename/archive, delete."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx

from employeevirtual.runtime import Runtime
from support.api import create_agent, register_and_login


async def _turn(
    client: httpx.AsyncClient, headers: dict[str, str], **params: str
) -> dict[str, object]:
    r = await client.post("/api/chat/agent", params={"message": "ola", **params}, headers=headers)
    assert r.status_code == 200, r.text
    return dict(r.json())


async def test_listing_filters_and_cursor(client: httpx.AsyncClient) -> None:
    headers = await register_and_login(client)
    a1 = await create_agent(client, headers, name="Vendas")
    a2 = await create_agent(client, headers, name="Suporte")
    ids = [
        str((await _turn(client, headers, agent_id=a["id"]))["conversation_id"])
        for a in (a1, a2, a1, a2, a1)
    ]
    # latest activity first
    r = await client.get("/api/conversations", headers=headers)
    assert [c["id"] for c in r.json()["items"]] == ids[::-1]
    # cursor pages of two cover everything exactly once
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/api/conversations", params=params, headers=headers)).json()
        seen += [c["id"] for c in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ids[::-1]
    r = await client.get("/api/conversations", params={"agent_id": a2["id"]}, headers=headers)
    assert [c["id"] for c in r.json()["items"]] == [ids[3], ids[1]]
    # a new turn moves a conversation to the top
    await _turn(client, headers, conversation_id=ids[0])
    r = await client.get("/api/conversations", params={"limit": 1}, headers=headers)
    assert r.json()["items"][0]["id"] == ids[0]
    # archive and filter by status
    r = await client.patch(
        f"/api/conversations/{ids[2]}", json={"status": "archived", "title": "Old"}, headers=headers
    )
    assert r.status_code == 200 and r.json()["status"] == "archived" and r.json()["title"] == "Old"
    r = await client.get("/api/conversations", params={"status": "archived"}, headers=headers)
    assert [c["id"] for c in r.json()["items"]] == [ids[2]]
    # an archived conversation refuses new turns with a hint
    r = await client.post(
        "/api/chat/agent", params={"message": "oi", "conversation_id": ids[2]}, headers=headers
    )
    assert r.status_code == 409 and "set its status to active" in r.text
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    r = await client.get("/api/conversations", params={"created_after": future}, headers=headers)
    assert r.json()["items"] == []
    r = await client.get("/api/conversations", params={"created_before": future}, headers=headers)
    assert len(r.json()["items"]) == 5


async def test_history_pages_newest_first(client: httpx.AsyncClient, runtime: Runtime) -> None:
    headers = await register_and_login(client)
    agent = await create_agent(client, headers)
    cid = str((await _turn(client, headers, agent_id=agent["id"]))["conversation_id"])
    for _ in range(5):
        await _turn(client, headers, conversation_id=cid)
    pages: list[list[int]] = []
    before: str | None = None
    while True:
        params: dict[str, str | int] = {"limit": 5}
        if before:
            params["before"] = before
        r = await client.get(f"/api/conversations/{cid}/messages", params=params, headers=headers)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["source"] == "mongodb"
        pages.append([m["seq"] for m in body["messages"]])
        before = body["next_before"]
        if before is None:
            break
    assert pages == [[8, 9, 10, 11, 12], [3, 4, 5, 6, 7], [1, 2]]
    # the MongoDB window keeps the newest messages only
    doc = await runtime.documents.conversations.find_one({"_id": cid})
    assert doc is not None and [m["seq"] for m in doc["messages"]] == list(range(1, 13))


async def test_delete_removes_both_stores_and_audits(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    headers = await register_and_login(client)
    agent = await create_agent(client, headers)
    cid = str((await _turn(client, headers, agent_id=agent["id"]))["conversation_id"])
    r = await client.delete(f"/api/conversations/{cid}", headers=headers)
    assert r.status_code == 204
    assert (await client.get(f"/api/conversations/{cid}", headers=headers)).status_code == 404
    db = runtime.documents
    assert await db.conversations.count_documents({"_id": cid}) == 0
    assert await db.messages.count_documents({"conversation_id": cid}) == 0
    from sqlalchemy import select

    from employeevirtual.stores.sql.tables import audit_log

    async with runtime.engine.connect() as conn:
        actions = (
            (await conn.execute(select(audit_log.c.action).where(audit_log.c.target_id == cid)))
            .scalars()
            .all()
        )
    assert actions == ["conversation.delete"]


async def test_another_users_ids_answer_404(client: httpx.AsyncClient) -> None:
    owner = await register_and_login(client)
    agent = await create_agent(client, owner)
    cid = str((await _turn(client, owner, agent_id=agent["id"]))["conversation_id"])
    other = await register_and_login(client)
    for method, path in [
        ("GET", f"/api/conversations/{cid}"),
        ("GET", f"/api/conversations/{cid}/messages"),
        ("PATCH", f"/api/conversations/{cid}"),
        ("DELETE", f"/api/conversations/{cid}"),
        ("GET", f"/api/agents/{agent['id']}"),
        ("PATCH", f"/api/agents/{agent['id']}"),
        ("DELETE", f"/api/agents/{agent['id']}"),
    ]:
        r = await client.request(
            method, path, headers=other, json={} if method == "PATCH" else None
        )
        assert r.status_code == 404, (method, path, r.text)
        assert "ola" not in r.text
    r = await client.post(
        "/api/chat/agent", params={"message": "x", "conversation_id": cid}, headers=other
    )
    assert r.status_code == 404
    r = await client.post(
        "/api/chat/agent", params={"message": "x", "agent_id": agent["id"]}, headers=other
    )
    assert r.status_code == 404
    assert (await client.get("/api/conversations", headers=other)).json()["items"] == []
    # the owner's data is untouched
    r = await client.get(f"/api/conversations/{cid}", headers=owner)
    assert r.status_code == 200 and r.json()["message_count"] == 2
    assert uuid.UUID(r.json()["id"])
