"""The relay and the reconciler carry memory (issue 18): with MongoDB failing every write,
memories saved and forgotten and summaries written land in SQL only; once MongoDB is healed the
relay brings its copies level (a forgotten memory's copy and tombstone gone), and the
reconciler repairs copies MongoDB lost or holds too many of."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from pymongo import AsyncMongoClient
from sqlalchemy import select

from employeevirtual.chat.turn import TurnSucceeded
from employeevirtual.runtime import Runtime
from employeevirtual.settings import Settings
from employeevirtual.stores.mongo.secantus import SecantusServer
from employeevirtual.stores.records import UserRecord
from employeevirtual.stores.sql import tables
from employeevirtual.sync.memory import MemorySync
from support import factories
from support.memory import PROBE_MODEL, install_probe
from support.people import erase
from support.stores import PutLater


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """A 4-message window summarized every 2 messages, by the offline extractive summary."""
    return settings.model_copy(
        update={
            "agent_context_messages": 4,
            "memory_summary_every": 2,
            "memory_summary_model": "offline",
        }
    )


@pytest.fixture
async def mongo_writes(secantus: SecantusServer) -> AsyncIterator[Any]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(secantus.url)

    async def fail(on: bool) -> None:
        await client.admin.command(
            {
                "configureFailPoint": "failCommand",
                "mode": "alwaysOn" if on else "off",
                "data": {"failCommands": ["insert", "update", "delete"], "errorCode": 2},
            }
        )

    try:
        yield fail
    finally:
        await fail(False)
        await client.close()


async def _say(runtime: Runtime, owner: UserRecord, message: str, **to: Any) -> str:
    """One answered turn through the chat service; its conversation's id."""
    outcome = await factories.turn(runtime, owner, message, **to)
    assert isinstance(outcome, TurnSucceeded), outcome
    return str(outcome.conversation.id)


async def _sql_summary_version(runtime: Runtime, cid: str) -> int:
    s = tables.conversation_summaries.c
    async with runtime.engine.connect() as conn:
        versions = [
            r[0]
            for r in await conn.execute(
                select(s.version).where(s.conversation_id == uuid.UUID(cid))
            )
        ]
    return max(versions, default=0)


async def test_relay_and_reconciler_carry_memories_and_summaries(
    client: httpx.AsyncClient, runtime: Runtime, mongo_writes: Any
) -> None:
    install_probe(runtime)
    assert runtime.memory is not None
    owner = await factories.user(runtime)
    headers = factories.headers(runtime, owner)  # for the person's own memory routes
    agent = await factories.agent(runtime, owner, model=PROBE_MODEL)
    memories = runtime.documents.db["user_memories"]
    conversations = runtime.documents.conversations

    cid = await _say(runtime, owner, "remember: Fact one is kept.", agent=agent)
    await runtime.relay.run_once()
    assert await memories.count_documents({}) == 1
    (one,) = (await client.get("/api/memories", headers=headers)).json()["items"]

    # MongoDB refuses every write: memories, a forget and summaries land in SQL only
    await mongo_writes(True)
    await _say(runtime, owner, "remember: Fact two is new.", conversation=uuid.UUID(cid))
    for i in range(3):
        await _say(runtime, owner, f"what is item {i}?", conversation=uuid.UUID(cid))
    await runtime.memory.worker.drain()
    r = await client.delete(f"/api/memories/{one['id']}", headers=headers)
    assert r.status_code == 204  # SQL is the truth: the person is answered at once
    version = await _sql_summary_version(runtime, cid)
    assert version >= 1
    await mongo_writes(False)
    assert await memories.count_documents({}) == 1  # still the old copy, "Fact one"
    doc = await conversations.find_one({"_id": cid})
    assert doc is not None and "conversation_state" not in doc.get("context", {})

    # healed: the relay brings MongoDB level
    await runtime.relay.run_once()
    await runtime.relay.run_once()
    copies = await memories.find({}).to_list(None)
    assert [c["content"] for c in copies] == ["Fact two is new."]
    assert copies[0]["source"]["conversation_id"] == cid
    doc = await conversations.find_one({"_id": cid})
    assert doc is not None
    state = doc["context"]["conversation_state"]
    assert (
        state["version"] == version and "#1 user: remember: Fact one is kept." in state["summary"]
    )
    async with runtime.engine.connect() as conn:
        rows = (await conn.execute(select(tables.memories))).all()
    assert len(rows) == 1 and rows[0].synced_version == rows[0].version  # tombstone gone
    summaries = tables.conversation_summaries.c
    async with runtime.engine.connect() as conn:
        unsynced = (
            await conn.execute(select(summaries.version).where(summaries.synced_at.is_(None)))
        ).all()
    assert unsynced == []

    # MongoDB loses the copies and gains a stray one: the reconciler repairs it from SQL
    await memories.delete_many({})
    await memories.insert_one({"_id": str(uuid.uuid4()), "content": "stray", "version": 1})
    await conversations.update_one({"_id": cid}, {"$unset": {"context.conversation_state": ""}})
    report = await runtime.reconciler.run(repair=True)
    kinds = {d.kind for d in report.drifts}
    assert {"memory_missing", "memory_extra", "summary"} <= kinds, report.drifts
    copies = await memories.find({}).to_list(None)
    assert [c["content"] for c in copies] == ["Fact two is new."]
    doc = await conversations.find_one({"_id": cid})
    assert doc is not None and doc["context"]["conversation_state"]["version"] == version
    assert (await runtime.reconciler.run(repair=False)).clean


async def test_a_memory_carried_past_its_owners_erasure_is_taken_back(
    runtime: Runtime, mongo_writes: Any
) -> None:
    """The relay read a memory MongoDB lacks; the owner's erasure then removed it from SQL and
    their copies from MongoDB before the relay wrote it: the copy is deleted again."""
    install_probe(runtime)
    assert runtime.memory is not None
    await factories.user(runtime, name="Admin")  # the heir: the person is not the only admin
    person = await factories.user(runtime, name="Pia")
    agent = await factories.agent(runtime, person, model=PROBE_MODEL)
    memories = runtime.documents.db["user_memories"]
    await mongo_writes(True)
    await _say(runtime, person, "remember: Pia keeps a secret.", agent=agent)
    await runtime.memory.worker.drain()
    await mongo_writes(False)
    assert await memories.count_documents({}) == 0
    copies = PutLater(runtime.documents)
    copies.meanwhile = lambda: erase(runtime, person)
    assert await MemorySync(runtime.engine, copies).carry_memories() == 1
    assert copies.meanwhile is None  # the erasure ran between the read and the write
    assert await memories.count_documents({}) == 0
