"""A person's erasure and export, the analytics rollups and the retention job write to MongoDB
through an index, never a scan (``conftest``: the scan-logging SecantusDB)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from employeevirtual.people.retention import RetentionPolicy
from employeevirtual.runtime import Runtime
from support.api import Account, account, create_agent
from support.people import wait_done
from support.scan_logging_secantus import ScanLoggingSecantus


async def _conversation(client: httpx.AsyncClient, runtime: Runtime, owner: Account) -> str:
    """Two turns, the first rated; written to MongoDB."""
    agent = await create_agent(client, owner.headers)
    r = await client.post(
        "/api/chat/agent", json={"message": "hi", "agent_id": agent["id"]}, headers=owner.headers
    )
    assert r.status_code == 200, r.text
    cid, reply = r.json()["conversation_id"], r.json()["agent_message"]["id"]
    r = await client.post(
        "/api/chat/agent", json={"message": "more", "conversation_id": cid}, headers=owner.headers
    )
    assert r.status_code == 200, r.text
    r = await client.post(
        f"/api/conversations/{cid}/messages/{reply}/feedback",
        json={"rating": "up"},
        headers=owner.headers,
    )
    assert r.status_code in (200, 201), r.text
    await runtime.acks.flush()
    return str(cid)


async def test_an_export_and_an_erasure_scan_no_collection(
    client: httpx.AsyncClient, runtime: Runtime, scanning: ScanLoggingSecantus
) -> None:
    admin = await account(client, name="Admin")
    person = await account(client, name="Pia")
    await _conversation(client, runtime, person)
    await runtime.documents.log_system(
        level="INFO", event="test", message="about Pia", details={"user_id": person.id}
    )
    r = await client.post("/api/users/me/export", headers=person.headers)
    assert r.status_code == 202, r.text
    job = r.json()["id"]
    for _ in range(300):
        r = await client.get(f"/api/exports/{job}", headers=person.headers)
        if r.json()["status"] not in ("pending", "running"):
            break
        await asyncio.sleep(0.05)
    assert r.json()["status"] == "ready", r.json()

    r = await client.request(
        "DELETE", f"/api/admin/users/{person.id}", json={}, headers=admin.headers
    )
    assert r.status_code == 202, r.text
    await runtime.erasure.run_pending()
    assert (await wait_done(client, admin.headers, r.json()["id"]))["status"] == "done"
    assert await runtime.documents.db["system_logs"].count_documents({}) == 0

    assert scanning.scans() == []


def _run(day: datetime, user_id: str) -> dict[str, Any]:
    return {
        "_id": str(uuid.uuid4()),
        "conversation_id": str(uuid.uuid4()),
        "user_id": user_id,
        "agent_id": "a",
        "model": "offline",
        "input_tokens": 3,
        "output_tokens": 2,
        "status": "success",
        "timestamp": day,
    }


async def test_the_rollup_rounds_scan_no_collection(
    client: httpx.AsyncClient, runtime: Runtime, scanning: ScanLoggingSecantus
) -> None:
    owner = await account(client, name="Olga")
    await _conversation(client, runtime, owner)
    now = datetime.now(UTC)
    await runtime.documents.analytics.insert_many(
        [_run(now - timedelta(days=d), owner.id) for d in (1, 1, 2, 4)]
    )
    rollups = runtime.rollup_task.rollups
    assert (await rollups.run()).days
    # the next round rolls the same days again: its $merge replaces their documents
    await _conversation(client, runtime, owner)
    await rollups.run()
    assert await rollups.check(now.date() - timedelta(days=4), now.date()) == []

    assert scanning.scans() == []


async def test_the_retention_job_scans_no_collection(
    client: httpx.AsyncClient, runtime: Runtime, scanning: ScanLoggingSecantus
) -> None:
    owner = await account(client, name="Olga")
    kept = await _conversation(client, runtime, owner)
    archived = await _conversation(client, runtime, owner)
    r = await client.patch(
        f"/api/conversations/{archived}", json={"status": "archived"}, headers=owner.headers
    )
    assert r.status_code == 200
    await runtime.documents.log_system(level="INFO", event="test", message="a system log")
    await runtime.rollup_task.rollups.run()
    job = runtime.retention
    job.policy = RetentionPolicy(
        user_activities_days=30,
        system_logs_days=30,
        chat_analytics_days=30,
        audit_log_days=30,
        archived_conversations_days=30,
    )
    await job.ensure_ttl_indexes()  # as its round does first
    real_now = datetime.now(UTC)
    job.clock = lambda: real_now + timedelta(days=40)
    report = await job.run_once()
    assert report.deleted["conversations"] == 1 and report.deleted["system_logs"] == 1
    assert await runtime.documents.conversations.count_documents({"_id": kept}) == 1

    assert scanning.scans() == []
