"""The stores converge on sources too: a knowledge turn acknowledged while MongoDB fails is
replayed by the relay with its sources, and ``context.rag_context`` is rebuilt from SQL; a
repair puts a lost message back with its sources."""

from __future__ import annotations

import httpx

from employeevirtual.runtime import Runtime
from employeevirtual.stores.mongo.secantus import SecantusServer
from support.api import create_agent, register_and_login
from support.knowledge import create_base, upload, wait_done
from support.stores import mongo_failing

POLICY = b"# Returns\n\nUnworn items may be returned within 45 days of delivery for a refund."


async def test_relay_and_repair_carry_sources(
    client: httpx.AsyncClient, runtime: Runtime, secantus: SecantusServer
) -> None:
    headers = await register_and_login(client)
    base = await create_base(client, headers)
    doc = await upload(client, headers, base["id"], "returns.md", POLICY)
    await wait_done(client, headers, base["id"], doc["id"])
    agent = await create_agent(client, headers, knowledge_base_ids=[base["id"]])
    async with mongo_failing(secantus.url):
        r = await client.post(
            "/api/chat/agent",
            json={"message": "How long do I have to return an item?", "agent_id": agent["id"]},
            headers=headers,
        )
        assert r.status_code == 200, r.text
    answer = r.json()
    sources, cid = answer["sources"], answer["conversation_id"]
    assert sources and sources[0]["document_id"] == doc["id"]
    reply_id = answer["agent_message"]["id"]
    assert await runtime.documents.messages.find_one({"_id": reply_id}) is None

    await runtime.acks.flush()
    result = await runtime.relay.run_once()
    assert result.messages == 2
    stored = await runtime.documents.messages.find_one({"_id": reply_id})
    assert stored is not None and stored["metadata"]["sources"] == sources
    conversation = await runtime.documents.conversations.find_one({"_id": cid})
    assert conversation is not None
    rag = conversation["context"]["rag_context"]
    assert rag["message_id"] == reply_id and rag["sources"] == sources
    assert rag["queries"] == ["How long do I have to return an item?"]

    await runtime.documents.messages.delete_one({"_id": reply_id})
    report = await runtime.reconciler.run(repair=True)
    assert any(d.conversation_id == cid for d in report.drifts)
    stored = await runtime.documents.messages.find_one({"_id": reply_id})
    assert stored is not None and stored["metadata"]["sources"] == sources
