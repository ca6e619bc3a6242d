"""A knowledge base's life writes to MongoDB through an index, never a scan: a document
uploaded and ingested, searched, quoted in a turn, deleted (``conftest``: the scan-logging
SecantusDB)."""

from __future__ import annotations

import httpx

from employeevirtual.runtime import Runtime
from support.api import create_agent, register_and_login
from support.knowledge import create_base, upload, wait_done
from support.scan_logging_secantus import ScanLoggingSecantus

REFUNDS = b"""# Refund policy

Customers may return any unworn item within 45 days of delivery for a full refund.
"""


async def test_a_knowledge_bases_life_scans_no_collection(
    client: httpx.AsyncClient, runtime: Runtime, scanning: ScanLoggingSecantus
) -> None:
    headers = await register_and_login(client)
    base = await create_base(client, headers)
    doc = await upload(client, headers, base["id"], "refunds.md", REFUNDS)
    assert (await wait_done(client, headers, base["id"], doc["id"]))["status"] == "ready"
    question = "How many days do I have to return an item?"
    r = await client.post(
        f"/api/knowledge-bases/{base['id']}/search", json={"query": question}, headers=headers
    )
    assert r.status_code == 200 and r.json()["results"], r.text
    agent = await create_agent(client, headers, knowledge_base_ids=[base["id"]])
    r = await client.post(
        "/api/chat/agent", json={"message": question, "agent_id": agent["id"]}, headers=headers
    )
    assert r.status_code == 200 and r.json()["sources"], r.text
    r = await client.delete(
        f"/api/knowledge-bases/{base['id']}/documents/{doc['id']}", headers=headers
    )
    assert r.status_code == 204
    await runtime.acks.flush()
    await runtime.relay.run_once()

    assert scanning.scans() == []
