"""Access: a user's search reaches only bases that user may read, because the engine's own
query is filtered on them; another user's private document never appears in sources."""

from __future__ import annotations

from uuid import UUID

import httpx

from employeevirtual.runtime import Runtime
from support.api import create_agent, register_and_login
from support.knowledge import create_base, upload, wait_done

SECRET = b"# Salaries\n\nThe director's salary is 250000 euros a year, paid monthly."
PUBLIC = b"# Holidays\n\nEvery employee has 25 days of paid holiday a year."


async def test_private_base_is_unreachable_for_others(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    alice = await register_and_login(client, name="Alice")
    bob = await register_and_login(client, name="Bob")
    private = await create_base(client, alice, name="HR private")
    shared = await create_base(client, alice, name="Handbook", visibility="shared")
    secret = await upload(client, alice, private["id"], "salaries.md", SECRET)
    public = await upload(client, alice, shared["id"], "holidays.md", PUBLIC)
    for base, doc in ((private, secret), (shared, public)):
        assert (await wait_done(client, alice, base["id"], doc["id"]))["status"] == "ready"

    # the original comes back byte for byte, to its owner only
    r = await client.get(
        f"/api/knowledge-bases/{private['id']}/documents/{secret['id']}/original", headers=alice
    )
    assert r.status_code == 200 and r.content == SECRET
    assert "salaries.md" in r.headers["content-disposition"]
    r = await client.get(
        f"/api/knowledge-bases/{private['id']}/documents/{secret['id']}/original", headers=bob
    )
    assert r.status_code == 404

    # Bob cannot give his agent Alice's private base; a shared one is fine
    r = await client.post(
        "/api/agents",
        json={"name": "Snoop", "knowledge_base_ids": [private["id"]]},
        headers=bob,
    )
    assert r.status_code == 422 and private["id"] in r.json()["detail"], r.text
    await create_agent(client, bob, knowledge_base_ids=[shared["id"]])

    # Alice shares an agent that reads both her bases: Bob's turns only reach the shared one
    agent = await create_agent(
        client,
        alice,
        visibility="shared",
        knowledge_base_ids=[private["id"], shared["id"]],
    )
    question = "What is the director's salary?"
    r = await client.post(
        "/api/chat/agent", json={"message": question, "agent_id": agent["id"]}, headers=alice
    )
    assert r.status_code == 200
    assert r.json()["sources"][0]["document_id"] == secret["id"]
    r = await client.post(
        "/api/chat/agent", json={"message": question, "agent_id": agent["id"]}, headers=bob
    )
    assert r.status_code == 200
    cited = {s["document_id"] for s in r.json()["sources"]}
    assert secret["id"] not in cited and "250000" not in r.text
    assert cited <= {public["id"]}

    # the filter is the engine's: asked for the shared base only, it never returns the private
    # base's chunks, even for a query that matches them best
    both = "salary paid a year"
    hits = await runtime.knowledge.index.search(
        text=both, vector=None, base_ids=[UUID(shared["id"])], limit=10, mode="lexical"
    )
    assert hits and {h.base_id for h in hits} == {UUID(shared["id"])}
    everything = await runtime.knowledge.index.search(
        text=both,
        vector=None,
        base_ids=[UUID(shared["id"]), UUID(private["id"])],
        limit=10,
        mode="lexical",
    )
    assert everything[0].document_id == UUID(secret["id"])

    # and over HTTP: Bob's search of Alice's private base is a 404, of the shared one fine
    r = await client.post(
        f"/api/knowledge-bases/{private['id']}/search", json={"query": "salary"}, headers=bob
    )
    assert r.status_code == 404
    r = await client.post(
        f"/api/knowledge-bases/{shared['id']}/search", json={"query": "holiday"}, headers=bob
    )
    assert r.status_code == 200 and r.json()["results"][0]["document_id"] == public["id"]


async def test_deleting_a_base_removes_every_chunk(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    alice = await register_and_login(client)
    base = await create_base(client, alice)
    doc = await upload(client, alice, base["id"], "holidays.md", PUBLIC)
    await wait_done(client, alice, base["id"], doc["id"])
    assert await runtime.knowledge.index.count(document_id=UUID(doc["id"])) > 0
    agent = await create_agent(client, alice, knowledge_base_ids=[base["id"]])
    r = await client.delete(f"/api/knowledge-bases/{base['id']}", headers=alice)
    assert r.status_code == 204
    assert await runtime.knowledge.index.count(document_id=UUID(doc["id"])) == 0
    r = await client.post(
        "/api/chat/agent",
        json={"message": "How many days of holiday?", "agent_id": agent["id"]},
        headers=alice,
    )
    assert r.status_code == 200 and r.json()["sources"] == []


async def test_bases_and_documents_page_newest_first(client: httpx.AsyncClient) -> None:
    """Pages of two follow ``next_cursor`` to the end: every base (and document) once, newest
    first, and the last page has no cursor."""
    alice = await register_and_login(client, name="Alice")
    made = [(await create_base(client, alice, name=f"Base {i}"))["id"] for i in range(5)]
    docs = [
        (await upload(client, alice, made[0], f"note{i}.md", b"# Note %d\n\nText." % i))["id"]
        for i in range(3)
    ]
    for path, expected in (
        ("/api/knowledge-bases", made),
        (f"/api/knowledge-bases/{made[0]}/documents", docs),
    ):
        seen: list[str] = []
        cursor: str | None = None
        pages = 0
        while True:
            params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
            r = await client.get(path, params=params, headers=alice)
            assert r.status_code == 200, r.text
            body = r.json()
            assert len(body["items"]) <= 2
            seen += [item["id"] for item in body["items"]]
            pages += 1
            cursor = body["next_cursor"]
            if cursor is None:
                break
        assert seen == list(reversed(expected))
        assert pages == (len(expected) + 1) // 2
