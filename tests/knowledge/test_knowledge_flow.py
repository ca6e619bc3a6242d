"""The knowledge path end to end over HTTP, on real stores and the real engine (LanceDB) with
the embedded embedder: upload -> ingestion -> an agent on the offline model searches and
quotes its source -> the sources are in the answer, the history, both stores and the
conversation document's ``context.rag_context``."""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID

import httpx
from sqlalchemy import select

from employeevirtual.runtime import Runtime
from employeevirtual.stores.sql.tables import messages
from support.api import create_agent, register_and_login
from support.knowledge import create_base, make_docx, make_pdf, upload, wait_done

REFUNDS = b"""# Refund policy

Customers of Lumen Outfitters may return any unworn item within 45 days of delivery for a full
refund. Refunds are paid to the original card within 7 business days.

## Exceptions

Gift cards and personalised jackets cannot be refunded.
"""

SHIPPING = b"""<html><body><h1>Shipping</h1><p>Orders leave our Porto warehouse within two
working days. Shipping to the Azores costs 9 euros.</p></body></html>"""


async def _chat(
    client: httpx.AsyncClient, headers: dict[str, str], message: str, **ids: str
) -> dict[str, Any]:
    r = await client.post("/api/chat/agent", json={"message": message, **ids}, headers=headers)
    assert r.status_code == 200, r.text
    return dict(r.json())


async def test_upload_ready_and_cited_answer_in_every_store(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    headers = await register_and_login(client)
    base = await create_base(client, headers)
    doc = await upload(client, headers, base["id"], "refunds.md", REFUNDS)
    assert doc["status"] == "queued"
    other = await upload(client, headers, base["id"], "shipping.html", SHIPPING)
    pdf = await upload(
        client,
        headers,
        base["id"],
        "warranty.pdf",
        make_pdf(["Warranty. Every Lumen tent carries a 3-year warranty against seam failure."]),
    )
    word = await upload(
        client,
        headers,
        base["id"],
        "stores.docx",
        make_docx("Stores", [("Lisbon store", "The Lisbon store opens at 10:00 on Sundays.")]),
    )
    for d in (doc, other, pdf, word):
        done = await wait_done(client, headers, base["id"], d["id"])
        assert done["status"] == "ready", done
        assert done["chunks_done"] == done["chunks_total"] > 0
        assert done["embedding_model"] == "wordllama:l2_supercat-256"

    agent = await create_agent(client, headers, knowledge_base_ids=[base["id"]])
    assert agent["knowledge_base_ids"] == [base["id"]]
    answer = await _chat(
        client,
        headers,
        "How many days do I have to return an item for a refund?",
        agent_id=agent["id"],
    )
    sources = answer["sources"]
    assert sources, answer
    best = sources[0]
    assert best["document_id"] == doc["id"]
    assert best["title"] == "refunds"
    assert "45 days" in best["passage"]
    assert best["chunk_id"].startswith(doc["id"] + ":")
    reply = answer["agent_message"]
    assert "45 days" in reply["content"] and "refunds" in reply["content"]
    assert reply["sources"] == sources

    # the PDF and the DOCX are searchable too
    warranty = await _chat(
        client,
        headers,
        "What warranty do tents have?",
        conversation_id=answer["conversation_id"],
    )
    assert warranty["sources"][0]["document_id"] == pdf["id"]
    assert "3-year warranty" in warranty["agent_message"]["content"]

    # history (MongoDB) and SQL hold the same sources
    conversation_id = answer["conversation_id"]
    r = await client.get(f"/api/conversations/{conversation_id}/messages", headers=headers)
    assert r.status_code == 200
    history = r.json()
    replies = [m for m in history["messages"] if m["message_type"] == "agent"]
    assert [m["sources"] for m in replies] == [sources, warranty["sources"]]
    async with runtime.engine.connect() as conn:
        rows = (
            await conn.execute(
                select(messages.c.id, messages.c.message_metadata)
                .where(messages.c.conversation_id == UUID(conversation_id))
                .order_by(messages.c.seq)
            )
        ).all()
    sql_sources = [r.message_metadata.get("sources") for r in rows if r.message_metadata]
    assert [s for s in sql_sources if s] == [sources, warranty["sources"]]
    mongo = runtime.documents
    stored = await mongo.messages.find_one({"_id": reply["id"]})
    assert stored is not None and stored["metadata"]["sources"] == sources
    conversation = await mongo.conversations.find_one({"_id": conversation_id})
    assert conversation is not None
    rag = conversation["context"]["rag_context"]
    assert rag["message_id"] == warranty["agent_message"]["id"]
    assert rag["sources"] == warranty["sources"]
    assert rag["queries"] == ["What warranty do tents have?"]


async def test_deleted_document_is_never_cited_again(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    headers = await register_and_login(client)
    base = await create_base(client, headers)
    doc = await upload(client, headers, base["id"], "refunds.md", REFUNDS)
    await wait_done(client, headers, base["id"], doc["id"])
    agent = await create_agent(client, headers, knowledge_base_ids=[base["id"]])
    question = "How many days do I have to return an item for a refund?"
    first = await _chat(client, headers, question, agent_id=agent["id"])
    assert first["sources"][0]["document_id"] == doc["id"]

    r = await client.delete(
        f"/api/knowledge-bases/{base['id']}/documents/{doc['id']}", headers=headers
    )
    assert r.status_code == 204
    # gone from the engine before the call returned, not merely hidden
    assert await runtime.knowledge.index.count(document_id=UUID(doc["id"])) == 0
    for mode in ("hybrid", "lexical", "vector"):
        r = await client.post(
            f"/api/knowledge-bases/{base['id']}/search",
            json={"query": question, "mode": mode},
            headers=headers,
        )
        assert r.status_code == 200 and r.json()["results"] == [], r.text
    again = await _chat(client, headers, question, agent_id=agent["id"])
    assert again["sources"] == []
    assert "found nothing" in again["agent_message"]["content"]
    r = await client.get(
        f"/api/knowledge-bases/{base['id']}/documents/{doc['id']}", headers=headers
    )
    assert r.status_code == 404


def _events(body: str) -> list[tuple[str, dict[str, Any]]]:
    events = []
    for block in body.split("\n\n"):
        kind, data = "", ""
        for line in block.splitlines():
            if line.startswith("event:"):
                kind = line[6:].strip()
            elif line.startswith("data:"):
                data += line[5:].strip()
        if kind and data:
            events.append((kind, json.loads(data)))
    return events


async def test_streamed_turn_emits_sources(client: httpx.AsyncClient, runtime: Runtime) -> None:
    headers = await register_and_login(client)
    base = await create_base(client, headers)
    doc = await upload(client, headers, base["id"], "refunds.md", REFUNDS)
    await wait_done(client, headers, base["id"], doc["id"])
    agent = await create_agent(client, headers, knowledge_base_ids=[base["id"]])
    r = await client.post(
        "/api/chat/agent",
        json={"message": "Which items cannot be refunded?", "agent_id": agent["id"]},
        headers={**headers, "Accept": "text/event-stream"},
    )
    assert r.status_code == 200, r.text
    events = _events(r.text)
    kinds = [k for k, _ in events]
    assert "tool_call" in kinds and "sources" in kinds and kinds[-1] == "done", kinds
    assert kinds.index("tool_call") < kinds.index("sources") < kinds.index("delta")
    sources = next(data for kind, data in events if kind == "sources")["sources"]
    assert sources[0]["document_id"] == doc["id"]
    assert "Gift cards" in sources[0]["passage"]
    done = events[-1][1]
    assert done["agent_message"]["sources"] == sources
    # stored with the message like a non-streamed turn's, in both stores
    stored = await runtime.documents.messages.find_one({"_id": done["agent_message"]["id"]})
    assert stored is not None and stored["metadata"]["sources"] == sources
    r = await client.get(f"/api/conversations/{done['conversation_id']}/messages", headers=headers)
    replies = [m for m in r.json()["messages"] if m["message_type"] == "agent"]
    assert replies[-1]["sources"] == sources
