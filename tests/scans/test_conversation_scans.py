"""A conversation's everyday writes to MongoDB are found by an index, never by a scan.

On the embedded default (SecantusDB) a write whose filter no index answers reads every document
of its collection under the collection's lock: its cost grows with the number of conversations,
and concurrent writers queue behind it. The summary pass's update once paired ``_id`` with a
top-level ``$or`` (19 ms at 3,000 conversations, against 0.5 ms): in a bench run the embedded
SecantusDB's CPU per turn was 5.4 ms on one worker and 9.1 ms on two, against 3.0 and 4.2 with
fewer conversations (docs/bench.md). This test runs a conversation's life on a SecantusDB that
notes every such scan (``support.scan_logging_secantus``).
"""

from __future__ import annotations

import httpx

from employeevirtual.runtime import Runtime
from support.api import create_agent, register_and_login
from support.scan_logging_secantus import ScanLoggingSecantus


async def test_a_conversations_writes_scan_no_collection(
    client: httpx.AsyncClient, runtime: Runtime, scanning: ScanLoggingSecantus
) -> None:
    headers = await register_and_login(client)
    agent = await create_agent(client, headers)  # the offline model; memory on
    r = await client.post(
        "/api/chat/agent",
        json={"message": "remember that I am allergic to peanuts", "agent_id": agent["id"]},
        headers=headers,
    )
    assert r.status_code == 200, r.text
    cid = r.json()["conversation_id"]
    for text in ("My favourite city is Lisbon.", "I work nights.", "What do I eat?"):
        r = await client.post(
            "/api/chat/agent", json={"message": text, "conversation_id": cid}, headers=headers
        )
        assert r.status_code == 200, r.text
    assert runtime.memory is not None
    await runtime.memory.worker.drain()
    summaries = await runtime.documents.conversations.find_one({"_id": cid})
    assert summaries is not None and summaries["context"]["conversation_state"]["version"] >= 2

    message_id = r.json()["agent_message"]["id"]
    r = await client.post(
        f"/api/conversations/{cid}/messages/{message_id}/feedback",
        json={"rating": "up"},
        headers=headers,
    )
    assert r.status_code in (200, 201), r.text
    r = await client.post(f"/api/conversations/{cid}/regenerate", headers=headers)
    assert r.status_code == 200, r.text
    r = await client.patch(f"/api/conversations/{cid}", json={"title": "Food"}, headers=headers)
    assert r.status_code == 200, r.text
    await runtime.relay.run_once()
    await runtime.reconciler.run(repair=True)
    r = await client.delete(f"/api/conversations/{cid}", headers=headers)
    assert r.status_code == 204, r.text
    await runtime.relay.run_once()

    assert scanning.scans() == []
