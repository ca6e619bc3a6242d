"""Feedback on agent answers, in both stores: given, replaced, visible in history (from
MongoDB and from SQL), counted in analytics, owner-scoped, and carried by the relay when
MongoDB was away."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import httpx
from sqlalchemy import select

from employeevirtual.runtime import Runtime
from employeevirtual.settings import Settings
from employeevirtual.stores.sql import tables
from support.access import Account, account
from support.stores import mongo_failing


async def _turn(client: httpx.AsyncClient, runtime: Runtime, owner: Account) -> dict[str, Any]:
    r = await client.post("/api/agents", json={"name": "A"}, headers=owner.headers)
    r = await client.post(
        "/api/chat/agent", json={"message": "hi", "agent_id": r.json()["id"]}, headers=owner.headers
    )
    assert r.status_code == 200, r.text
    await runtime.acks.flush()  # the run's chat_analytics document is batched
    return dict(r.json())


def _url(turn: dict[str, Any], message_id: str | None = None) -> str:
    mid = message_id or turn["agent_message"]["id"]
    return f"/api/conversations/{turn['conversation_id']}/messages/{mid}/feedback"


async def _sql_row(runtime: Runtime, message_id: str) -> dict[str, Any] | None:
    f = tables.message_feedback
    async with runtime.engine.connect() as conn:
        row = (await conn.execute(select(f).where(f.c.message_id == UUID(message_id)))).first()
    return None if row is None else dict(row._mapping)


async def test_feedback_in_both_stores_history_and_analytics(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    admin = await account(client, name="Admin")
    owner = await account(client, name="Olga")
    other = await account(client, name="Otto")
    turn = await _turn(client, runtime, owner)
    mid = turn["agent_message"]["id"]

    r = await client.post(_url(turn), json={"rating": "up"}, headers=owner.headers)
    assert r.status_code == 200, r.text
    assert r.json()["rating"] == "up" and r.json()["comment"] is None
    r = await client.post(
        _url(turn), json={"rating": "down", "comment": "wrong total"}, headers=owner.headers
    )
    assert r.status_code == 200, r.text

    row = await _sql_row(runtime, mid)
    assert row is not None and (row["rating"], row["comment"]) == ("down", "wrong total")
    assert row["synced_at"] is not None  # MongoDB got this version
    doc = await runtime.documents.messages.find_one({"_id": mid})
    assert doc is not None and doc["feedback"]["rating"] == "down"
    assert doc["feedback"]["comment"] == "wrong total"
    run = await runtime.documents.analytics.find_one({"_id": mid})
    assert run is not None and run["feedback"] == {"rating": "down"}

    r = await client.get(
        f"/api/conversations/{turn['conversation_id']}/messages", headers=owner.headers
    )
    body = r.json()
    assert body["source"] == "mongodb"
    agent_msg = next(m for m in body["messages"] if m["id"] == mid)
    assert (agent_msg["feedback"]["rating"], agent_msg["feedback"]["comment"]) == (
        "down",
        "wrong total",
    )
    assert next(m for m in body["messages"] if m["id"] != mid)["feedback"] is None

    today = datetime.now(UTC).date().isoformat()
    r = await client.get(
        "/api/analytics/usage", params={"from": today, "to": today}, headers=owner.headers
    )
    (usage,) = r.json()["rows"]
    assert (usage["feedback_up"], usage["feedback_down"]) == (0, 1)  # replaced, not added

    # owner-scoped: another user, even an admin, cannot rate it; only agent answers are rated
    for who in (other, admin):
        r = await client.post(_url(turn), json={"rating": "up"}, headers=who.headers)
        assert r.status_code == 404, r.text
    r = await client.post(
        _url(turn, turn["user_message"]["id"]), json={"rating": "up"}, headers=owner.headers
    )
    assert r.status_code == 422 and "agent answers" in r.text
    r = await client.post(
        _url(turn, "00000000-0000-0000-0000-000000000000"),
        json={"rating": "up"},
        headers=owner.headers,
    )
    assert r.status_code == 404
    for bad in (
        {"rating": "meh"},
        {"rating": "up", "comment": "x" * 2001},
        {"rating": "up", "x": 1},
    ):
        r = await client.post(_url(turn), json=bad, headers=owner.headers)
        assert r.status_code == 422, bad
    row = await _sql_row(runtime, mid)
    assert row is not None and row["rating"] == "down"  # refused calls changed nothing

    # deleting the conversation deletes its feedback too
    r = await client.delete(f"/api/conversations/{turn['conversation_id']}", headers=owner.headers)
    assert r.status_code == 204
    assert await _sql_row(runtime, mid) is None


async def test_the_relay_carries_feedback_given_while_mongodb_was_away(
    client: httpx.AsyncClient, runtime: Runtime, settings: Settings
) -> None:
    owner = await account(client, name="Olga")
    turn = await _turn(client, runtime, owner)
    mid = turn["agent_message"]["id"]
    assert settings.mongodb_url is not None
    async with mongo_failing(settings.mongodb_url.get_secret_value(), ("update", "findAndModify")):
        r = await client.post(
            _url(turn), json={"rating": "up", "comment": "great"}, headers=owner.headers
        )
        assert r.status_code == 200, r.text  # SQL has it: acknowledged
    row = await _sql_row(runtime, mid)
    assert row is not None and row["synced_at"] is None  # owed to MongoDB
    doc = await runtime.documents.messages.find_one({"_id": mid})
    assert doc is not None and "feedback" not in doc

    # history served from SQL shows it already
    async with mongo_failing(settings.mongodb_url.get_secret_value(), ("find",)):
        r = await client.get(
            f"/api/conversations/{turn['conversation_id']}/messages", headers=owner.headers
        )
    body = r.json()
    assert body["source"] == "sql"
    assert next(m for m in body["messages"] if m["id"] == mid)["feedback"]["comment"] == "great"

    carried = await runtime.relay.carry_feedback(datetime.now(UTC))
    assert carried == 1
    doc = await runtime.documents.messages.find_one({"_id": mid})
    assert doc is not None and doc["feedback"]["rating"] == "up"
    run = await runtime.documents.analytics.find_one({"_id": mid})
    assert run is not None and run["feedback"] == {"rating": "up"}
    row = await _sql_row(runtime, mid)
    assert row is not None and row["synced_at"] is not None
    assert await runtime.relay.carry_feedback(datetime.now(UTC)) == 0  # nothing left owed


async def test_the_reconciler_finds_and_repairs_lost_feedback(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    runtime.reconciler.grace = timedelta(0)  # compare conversations active a moment ago too
    owner = await account(client, name="Olga")
    turn = await _turn(client, runtime, owner)
    mid = turn["agent_message"]["id"]
    r = await client.post(
        _url(turn), json={"rating": "down", "comment": "no"}, headers=owner.headers
    )
    assert r.status_code == 200
    assert not [
        d for d in (await runtime.reconciler.run(repair=False)).drifts if d.kind == "feedback"
    ]
    # MongoDB loses it (a restore from an older backup, a manual edit)
    await runtime.documents.messages.update_one({"_id": mid}, {"$unset": {"feedback": ""}})
    report = await runtime.reconciler.run(repair=False)
    assert report.conversations >= 1, report
    assert [d.kind for d in report.drifts if d.conversation_id == turn["conversation_id"]] == [
        "feedback"
    ]
    report = await runtime.reconciler.run(repair=True)
    assert all(d.repaired for d in report.drifts)
    doc = await runtime.documents.messages.find_one({"_id": mid})
    assert doc is not None and (doc["feedback"]["rating"], doc["feedback"]["comment"]) == (
        "down",
        "no",
    )
    assert not (await runtime.reconciler.run(repair=False)).drifts
