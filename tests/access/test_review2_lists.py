"""Second security review: agent lists are paged and capped, others' shared agents only when
asked for (item 5); an admin's reads of other users' agents and the user listing are audited
(item 13)."""

from __future__ import annotations

import asyncio
from uuid import UUID

import httpx

from employeevirtual.runtime import Runtime
from employeevirtual.settings import Settings
from support.access import account, app_client, audit_rows
from support.api import create_agent


async def test_agent_list_is_paged_and_others_shared_agents_only_on_request(
    settings: Settings,
) -> None:
    async with app_client(settings, max_agents_per_user=30) as (client, _runtime):
        await account(client, name="Admin")
        spammer = await account(client, name="Spam")
        victim = await account(client, name="Vera")
        big = "x" * 19_000
        for i in range(25):
            await create_agent(
                client, spammer.headers, name=f"s{i}", visibility="shared", instructions=big
            )
        mine = await create_agent(client, victim.headers, name="mine")
        # the victim's default list: their own agents only, however many others share
        r = await client.get("/api/agents", headers=victim.headers)
        assert r.status_code == 200
        assert [a["id"] for a in r.json()] == [mine["id"]]
        assert "X-Next-Cursor" not in r.headers
        assert len(r.content) < 30_000
        # others' shared agents when asked, one page at a time, each page bounded
        seen: list[str] = []
        url, params = "/api/agents", {"scope": "shared", "limit": "10"}
        while True:
            r = await client.get(url, params=params, headers=victim.headers)
            assert r.status_code == 200, r.text
            page = r.json()
            assert len(page) <= 10
            seen += [a["id"] for a in page]
            cursor = r.headers.get("X-Next-Cursor")
            if cursor is None:
                break
            assert 'rel="next"' in r.headers["Link"]
            params = {"scope": "shared", "limit": "10", "cursor": cursor}
        assert len(seen) == len(set(seen)) == 25
        r = await client.get("/api/agents", params={"scope": "all"}, headers=victim.headers)
        assert len(r.json()) == 20  # the default page size
        r = await client.get("/api/agents", params={"limit": "101"}, headers=victim.headers)
        assert r.status_code == 422


async def test_agents_per_user_are_capped_even_when_created_at_once(settings: Settings) -> None:
    async with app_client(settings, max_agents_per_user=5, rate_limit_global=10_000) as (
        client,
        _runtime,
    ):
        user = await account(client, name="Cap")
        results = await asyncio.gather(
            *(
                client.post("/api/agents", json={"name": f"a{i}"}, headers=user.headers)
                for i in range(12)
            )
        )
        codes = sorted(r.status_code for r in results)
        assert codes.count(201) == 5, codes
        refused = [r for r in results if r.status_code != 201]
        assert all(r.status_code == 409 and "limit" in r.json()["detail"] for r in refused)
        r = await client.get("/api/agents", headers=user.headers)
        assert len(r.json()) == 5
        # deleting one makes room again
        await client.delete(f"/api/agents/{r.json()[0]['id']}", headers=user.headers)
        r = await client.post("/api/agents", json={"name": "again"}, headers=user.headers)
        assert r.status_code == 201


async def test_admin_reads_of_others_agents_and_the_user_listing_are_audited(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    admin = await account(client, name="Admin")
    owner = await account(client, name="Rita")
    private = await create_agent(client, owner.headers, instructions="private playbook")
    shared = await create_agent(client, owner.headers, visibility="shared")
    own = await create_agent(client, admin.headers)

    r = await client.get(f"/api/agents/{private['id']}", headers=admin.headers)
    assert r.status_code == 200 and r.json()["instructions"] == "private playbook"
    rows = await audit_rows(runtime, "agent.audit_read")
    assert [(row["actor_id"], row["target_id"]) for row in rows] == [
        (uuid(admin.id), private["id"])
    ]
    assert rows[0]["details"] == {"owner_id": owner.id}
    assert rows[0]["client_ip"] == "203.0.113.7"
    # reading a shared agent or one's own is no admin privilege: no row
    for agent in (shared, own):
        assert (
            await client.get(f"/api/agents/{agent['id']}", headers=admin.headers)
        ).status_code == 200
    assert len(await audit_rows(runtime, "agent.audit_read")) == 1
    # the owner reading their own agent: no row either
    await client.get(f"/api/agents/{private['id']}", headers=owner.headers)
    assert len(await audit_rows(runtime, "agent.audit_read")) == 1

    # an admin's "all" listing that shows others' private agents: one row naming them
    r = await client.get("/api/agents", params={"scope": "all"}, headers=admin.headers)
    assert {a["id"] for a in r.json()} == {private["id"], shared["id"], own["id"]}
    listed = await audit_rows(runtime, "agent.audit_list")
    assert len(listed) == 1 and listed[0]["details"] == {"agents": [private["id"]]}

    # the admin user listing
    r = await client.get("/api/admin/users", headers=admin.headers)
    assert r.status_code == 200
    rows = await audit_rows(runtime, "user.audit_list")
    assert len(rows) == 1 and rows[0]["actor_id"] == uuid(admin.id)
    assert rows[0]["details"]["count"] == len(r.json()["items"])


def uuid(value: str) -> UUID:
    return UUID(value)
