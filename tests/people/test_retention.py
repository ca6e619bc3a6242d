"""Retention with an injected clock: each kind of data goes after its period (0 = forever),
conversations through the delete path (the reconciler agrees afterwards), raw analytics only
once the rollups hold them, the audit log in small batches, TTL indexes in MongoDB."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from pymongo import AsyncMongoClient
from sqlalchemy import func, select

from employeevirtual.people.retention import RetentionJob, RetentionPolicy
from employeevirtual.runtime import Runtime
from employeevirtual.stores.mongo.collections import Collections
from employeevirtual.stores.mongo.people import TTL_INDEX
from employeevirtual.stores.mongo.secantus import SecantusServer
from employeevirtual.stores.sql import tables
from support.access import account
from support.api import create_agent


async def _count(runtime: Runtime, table: str, **where: object) -> int:
    t = tables.metadata.tables[f"{tables.SCHEMA}.{table}"]
    query = select(func.count()).select_from(t)
    for column, value in where.items():
        query = query.where(t.c[column] == value)
    async with runtime.engine.connect() as conn:
        return int((await conn.execute(query)).scalar_one())


async def test_retention_purges_each_kind_after_its_period(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    owner = await account(client, name="Olga")
    agent = await create_agent(client, owner.headers)
    ids = []
    for text in ("keep me", "archive me"):
        r = await client.post(
            "/api/chat/agent",
            json={"message": text, "agent_id": agent["id"]},
            headers=owner.headers,
        )
        ids.append(r.json()["conversation_id"])
    kept, archived = ids
    r = await client.patch(
        f"/api/conversations/{archived}", json={"status": "archived"}, headers=owner.headers
    )
    assert r.status_code == 200
    await runtime.documents.log_system(level="INFO", event="test", message="a system log")
    await runtime.acks.flush()
    real_now = datetime.now(UTC)
    job = runtime.retention
    job.batch_size = 2  # the audit purge must take several short transactions

    # everything kept forever by default, whatever the clock says
    job.clock = lambda: real_now + timedelta(days=3650)
    report = await job.run_once()
    assert not any(report.deleted.values()), report.deleted

    # 40 days later: archived conversations (30 d), activities, logs, audit (30 d) go
    job.policy = RetentionPolicy(
        user_activities_days=30,
        system_logs_days=30,
        audit_log_days=30,
        archived_conversations_days=30,
    )
    audit_before = await _count(runtime, "audit_log")
    assert audit_before >= 3  # more than one batch of 2
    job.clock = lambda: real_now + timedelta(days=40)
    report = await job.run_once()
    assert report.deleted["conversations"] == 1
    assert report.deleted[Collections.USER_ACTIVITIES] >= 2  # logins, conversation_created
    assert report.deleted[Collections.SYSTEM_LOGS] == 1
    # the purge's own audit row (conversation.purge) is newer than the cutoff, so it stays
    assert report.deleted["audit_log"] == audit_before
    assert await _count(runtime, "audit_log") == 1
    assert await _count(runtime, "conversations", id=uuid.UUID(archived)) == 0
    assert await _count(runtime, "messages", conversation_id=uuid.UUID(archived)) == 0
    assert await runtime.documents.messages.count_documents({"conversation_id": archived}) == 0
    assert await runtime.documents.conversations.count_documents({"_id": archived}) == 0
    assert await runtime.documents.activities.count_documents({}) == 0
    r = await client.get(f"/api/conversations/{kept}", headers=owner.headers)
    assert r.status_code == 200
    # the stores still agree
    assert (await runtime.reconciler.run(repair=False)).clean

    # idle conversations (any status) after their own period
    job.policy = RetentionPolicy(inactive_conversations_days=60)
    job.clock = lambda: real_now + timedelta(days=59)
    assert (await job.run_once()).deleted["conversations"] == 0
    job.clock = lambda: real_now + timedelta(days=61)
    assert (await job.run_once()).deleted["conversations"] == 1
    assert await _count(runtime, "conversations") == 0
    assert (await runtime.reconciler.run(repair=False)).clean


async def test_raw_analytics_go_only_once_the_rollups_hold_them(runtime: Runtime) -> None:
    now = datetime.now(UTC)
    raw = runtime.documents.analytics
    await raw.insert_many(
        [
            {"_id": "old", "user_id": "u", "timestamp": now - timedelta(days=10), "cost": 1},
            {"_id": "recent", "user_id": "u", "timestamp": now - timedelta(days=3), "cost": 1},
        ]
    )
    job = runtime.retention
    job.clock = lambda: now
    job.policy = RetentionPolicy(chat_analytics_days=5)
    # no rollup has run: nothing is purged
    assert (await job.run_once()).deleted.get(Collections.CHAT_ANALYTICS, 0) == 0
    assert await raw.count_documents({}) == 2
    # the rollups hold every complete day: runs older than 5 days go, the others stay
    await runtime.rollup_task.rollups.run()
    assert await runtime.rollup_task.rollups.complete_through() is not None
    assert (await job.run_once()).deleted[Collections.CHAT_ANALYTICS] == 1
    assert [d["_id"] async for d in raw.find({})] == ["recent"]


async def test_ttl_indexes_follow_the_settings(runtime: Runtime) -> None:
    job = runtime.retention
    coll = runtime.documents.activities

    async def ttl() -> int | None:
        async for index in await coll.list_indexes():
            if index["name"] == "ev_retention_ttl":
                return int(index["expireAfterSeconds"])
        return None

    job.policy = RetentionPolicy(user_activities_days=30)
    await job.ensure_ttl_indexes()
    assert await ttl() == 30 * 86_400
    job.policy = RetentionPolicy(user_activities_days=7)
    await job.ensure_ttl_indexes()
    assert await ttl() == 7 * 86_400
    job.policy = RetentionPolicy()
    await job.ensure_ttl_indexes()
    assert await ttl() is None


async def test_ttl_indexes_are_made_once_mongodb_answers(
    runtime: Runtime, secantus: SecantusServer
) -> None:
    """MongoDB unreachable when the job starts (every ``listIndexes`` drops its connection):
    the TTL index is made by a later round, not never (it used to be tried once, at start)."""
    coll = runtime.documents.activities
    job = RetentionJob(
        engine=runtime.engine,
        db=runtime.documents.db,
        conversations=runtime.retention.conversations,
        exports=runtime.retention.exports,
        policy=RetentionPolicy(user_activities_days=30),
        rollups_complete_through=runtime.retention.rollups_complete_through,
        rollup_lookback_days=runtime.retention.rollup_lookback_days,
        interval_seconds=0.1,
    )
    admin: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(secantus.url)

    async def fail(on: bool) -> None:
        await admin.admin.command(
            {
                "configureFailPoint": "failCommand",
                "mode": "alwaysOn" if on else "off",
                "data": {"failCommands": ["listIndexes"], "closeConnection": True},
            }
        )

    async def ttl_made() -> bool:
        return TTL_INDEX in [ix["name"] async for ix in await coll.list_indexes()]

    try:
        await fail(True)
        job.start()
        await asyncio.sleep(0.5)  # rounds that found MongoDB unreachable
        await fail(False)
        assert not await ttl_made()
        async with asyncio.timeout(10):
            while not await ttl_made():  # noqa: ASYNC110 - an index in MongoDB
                await asyncio.sleep(0.1)
    finally:
        await job.stop()
        await fail(False)
        await admin.close()
