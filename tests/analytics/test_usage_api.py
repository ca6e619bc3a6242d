"""GET /api/analytics/usage over HTTP after real turns: users see their own usage only,
admins everyone's; CSV gives the same rows; bad ranges are 422s that say what to fix."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

import httpx

from employeevirtual.runtime import Runtime
from support.access import account


async def _turns(client: httpx.AsyncClient, headers: dict[str, str], n: int) -> str:
    r = await client.post("/api/agents", json={"name": "A"}, headers=headers)
    agent_id = str(r.json()["id"])
    for i in range(n):
        r = await client.post(
            "/api/chat/agent", json={"message": f"hi {i}", "agent_id": agent_id}, headers=headers
        )
        assert r.status_code == 200, r.text
    return agent_id


async def test_users_see_their_own_usage_admins_everyones(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    admin = await account(client, name="Admin")
    ana = await account(client, name="Ana")
    bob = await account(client, name="Bob")
    await _turns(client, ana.headers, 3)
    await _turns(client, bob.headers, 2)
    await runtime.acks.flush()  # the runs reach chat_analytics with the batched flush
    today = datetime.now(UTC).date().isoformat()
    params = {"from": today, "to": today, "group_by": "user,model"}

    r = await client.get("/api/analytics/usage", params=params, headers=ana.headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["from"] == today and body["group_by"] == ["user", "model"]
    assert [(row["user_id"], row["turns"]) for row in body["rows"]] == [(ana.id, 3)]
    row = body["rows"][0]
    assert row["model"] == "offline" and row["failed"] == 0
    assert row["input_tokens"] > 0 and row["output_tokens"] > 0
    assert row["response_time_p50"] is not None and row["response_time_mean"] is not None

    r = await client.get(
        "/api/analytics/usage", params={**params, "user_id": bob.id}, headers=ana.headers
    )
    assert r.status_code == 404  # another user's usage: not found

    r = await client.get("/api/analytics/usage", params=params, headers=admin.headers)
    assert {(row["user_id"], row["turns"]) for row in r.json()["rows"]} == {
        (ana.id, 3),
        (bob.id, 2),
    }
    r = await client.get(
        "/api/analytics/usage", params={**params, "user_id": bob.id}, headers=admin.headers
    )
    assert [row["turns"] for row in r.json()["rows"]] == [2]

    r = await client.get(
        "/api/analytics/usage", params={**params, "format": "csv"}, headers=admin.headers
    )
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert {(row["user_id"], int(row["turns"])) for row in rows} == {(ana.id, 3), (bob.id, 2)}
    assert rows[0]["day"] == ""  # not grouped by day

    r = await client.get("/api/analytics/usage", headers=ana.headers)
    assert r.status_code == 422
    for bad, words in (
        ({"from": today, "to": "2000-01-01"}, "before"),
        ({"from": "2000-01-01", "to": today}, "at most"),
        ({"from": today, "to": today, "group_by": "week"}, "group_by"),
    ):
        r = await client.get("/api/analytics/usage", params=bad, headers=ana.headers)
        assert r.status_code == 422 and words in r.text, r.text


async def test_conversations_list_sorts_by_cost_with_keyset_pages(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    from decimal import Decimal
    from uuid import UUID

    from sqlalchemy import update

    from employeevirtual.stores.sql.tables import conversations

    ana = await account(client, name="Ana")
    r = await client.post("/api/agents", json={"name": "A"}, headers=ana.headers)
    agent_id = r.json()["id"]
    ids = []
    for _ in range(5):
        r = await client.post(
            "/api/chat/agent", json={"message": "hi", "agent_id": agent_id}, headers=ana.headers
        )
        ids.append(r.json()["conversation_id"])
    costs = ["0.5", "2.25", "0.5", "9", "0"]  # priced by a provider; the offline model is free
    async with runtime.engine.begin() as conn:
        for cid, cost in zip(ids, costs, strict=True):
            await conn.execute(
                update(conversations)
                .where(conversations.c.id == UUID(cid))
                .values(total_cost=Decimal(cost))
            )
    seen: list[tuple[str, str]] = []
    cursor = None
    while True:
        params = {"sort": "cost", "limit": 2, **({"cursor": cursor} if cursor else {})}
        r = await client.get("/api/conversations", params=params, headers=ana.headers)
        assert r.status_code == 200, r.text
        seen += [(c["id"], c["total_cost"]) for c in r.json()["items"]]
        cursor = r.json()["next_cursor"]
        if cursor is None:
            break
    assert [Decimal(str(c)) for _, c in seen] == sorted((Decimal(c) for c in costs), reverse=True)
    assert sorted(i for i, _ in seen) == sorted(ids)  # every one, once
    r = await client.get("/api/conversations", params={"limit": 2}, headers=ana.headers)
    time_cursor = r.json()["next_cursor"]
    r = await client.get(
        "/api/conversations", params={"sort": "cost", "cursor": time_cursor}, headers=ana.headers
    )
    assert r.status_code == 422 and "cursor" in r.text
