"""The relay and the reconciler write to MongoDB through an index, never a scan: the relay
copying what MongoDB missed and rebuilding the conversation documents, the reconciler repairing
every kind of drift (``conftest``: the scan-logging SecantusDB)."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from employeevirtual.runtime import Runtime
from support import factories
from support.api import create_agent, register_and_login
from support.scan_logging_secantus import ScanLoggingSecantus
from support.stores import mongo_failing, mongo_messages, sql_messages


async def test_the_relay_rebuilding_documents_scans_no_collection(
    client: httpx.AsyncClient, runtime: Runtime, scanning: ScanLoggingSecantus
) -> None:
    headers = await register_and_login(client)
    agent = await create_agent(client, headers)
    async with mongo_failing(scanning.url):
        r = await client.post(
            "/api/chat/agent", json={"message": "hi", "agent_id": agent["id"]}, headers=headers
        )
        assert r.status_code == 200, r.text
        cid, reply = r.json()["conversation_id"], r.json()["agent_message"]["id"]
        r = await client.post(
            "/api/chat/agent", json={"message": "more", "conversation_id": cid}, headers=headers
        )
        assert r.status_code == 200, r.text
        r = await client.post(
            f"/api/conversations/{cid}/messages/{reply}/feedback",
            json={"rating": "down"},
            headers=headers,
        )
        assert r.status_code in (200, 201), r.text
        await runtime.acks.flush()
    assert await mongo_messages(runtime, cid) == {}
    result = await runtime.relay.run_once()
    assert result.messages == 4
    assert await mongo_messages(runtime, cid) == await sql_messages(runtime, cid)
    r = await client.post(
        "/api/chat/agent", json={"message": "after", "conversation_id": cid}, headers=headers
    )
    assert r.status_code == 200, r.text
    await runtime.acks.flush()
    await runtime.relay.run_once()

    assert scanning.scans() == []


async def test_the_reconciler_repairing_scans_no_collection(
    runtime: Runtime, scanning: ScanLoggingSecantus
) -> None:
    owner = await factories.user(runtime)
    agent = await factories.agent(runtime, owner)
    lost, extra, counters, no_doc, moved = [
        str((await factories.conversation(runtime, owner, agent, ["a", "b"])).id) for _ in range(5)
    ]
    await runtime.acks.flush()
    docs = runtime.documents
    await docs.messages.delete_one({"conversation_id": lost, "seq": 3})
    stray: dict[str, Any] = {"_id": str(uuid.uuid4()), "conversation_id": extra, "seq": 99}
    await docs.messages.insert_one(stray)
    await docs.conversations.update_one({"_id": counters}, {"$inc": {"metadata.total_tokens": 7}})
    await docs.conversations.delete_one({"_id": no_doc})
    first = await docs.messages.find_one({"conversation_id": moved, "seq": 1})
    assert first is not None
    await docs.messages.delete_one({"_id": first["_id"]})
    await docs.messages.insert_one({**first, "seq": 50})
    orphan = str(uuid.uuid4())
    await docs.conversations.insert_one({"_id": orphan, "metadata": {"last_seq": 2}})
    await docs.messages.insert_one({"_id": str(uuid.uuid4()), "conversation_id": orphan, "seq": 1})
    await docs.analytics.insert_one({"_id": str(uuid.uuid4()), "conversation_id": orphan})
    scanning.forget_scans()  # the drifts above are the test's own writes

    repaired = await runtime.reconciler.run(repair=True)
    assert len(repaired.drifts) == 6 and all(d.repaired for d in repaired.drifts)
    assert (await runtime.reconciler.run(repair=False)).clean

    assert scanning.scans() == []
