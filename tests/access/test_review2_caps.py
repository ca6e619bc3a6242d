"""Second security review, item 5's siblings: conversations per user are capped (a turn that
would start one more is refused before anything is written, also when many start at once), and
the admin's budget list is paged like the other lists."""

from __future__ import annotations

import asyncio
from uuid import UUID

from employeevirtual.settings import Settings
from support.access import account, app_client, counts
from support.api import create_agent

SSE = {"Accept": "text/event-stream"}


async def test_conversations_per_user_are_capped_before_anything_is_written(
    settings: Settings,
) -> None:
    async with app_client(settings, max_conversations_per_user=3) as (client, runtime):
        user = await account(client, name="Cap")
        agent = await create_agent(client, user.headers)
        started = []
        for i in range(3):
            r = await client.post(
                "/api/chat/agent",
                json={"message": f"hello {i}", "agent_id": agent["id"]},
                headers=user.headers,
            )
            assert r.status_code == 200, r.text
            started.append(r.json()["conversation_id"])
        # archiving does not make room: archived conversations are kept, so they count
        r = await client.patch(
            f"/api/conversations/{started[0]}", json={"status": "archived"}, headers=user.headers
        )
        assert r.status_code == 200, r.text
        before = await counts(runtime)
        for headers in (user.headers, {**user.headers, **SSE}):
            r = await client.post(
                "/api/chat/agent",
                json={"message": "one more", "agent_id": agent["id"]},
                headers=headers,
            )
            assert r.status_code == 409, r.text
            detail = r.json()["detail"]
            assert "3 conversations" in detail and "delete" in detail, detail
        # with an Idempotency-Key too: refused, and the key is free for a retry
        key = {**user.headers, "Idempotency-Key": "cap-1"}
        r = await client.post(
            "/api/chat/agent", json={"message": "one more", "agent_id": agent["id"]}, headers=key
        )
        assert r.status_code == 409, r.text
        assert await counts(runtime) == before  # nothing written anywhere

        # an existing conversation goes on; another user is not affected
        r = await client.post(
            "/api/chat/agent",
            json={"message": "still here", "conversation_id": started[1]},
            headers=user.headers,
        )
        assert r.status_code == 200, r.text
        other = await account(client, name="Other")
        r = await client.post(
            "/api/chat/agent",
            json={"message": "hi", "agent_id": (await create_agent(client, other.headers))["id"]},
            headers=other.headers,
        )
        assert r.status_code == 200, r.text

        # deleting one makes room again (the same key now runs the turn)
        r = await client.delete(f"/api/conversations/{started[0]}", headers=user.headers)
        assert r.status_code == 204
        r = await client.post(
            "/api/chat/agent", json={"message": "one more", "agent_id": agent["id"]}, headers=key
        )
        assert r.status_code == 200, r.text


async def test_the_conversation_cap_holds_when_many_start_at_once(settings: Settings) -> None:
    async with app_client(
        settings,
        max_conversations_per_user=4,
        max_concurrent_turns=20,
        rate_limit_chat=1000,
        rate_limit_global=10_000,
    ) as (client, _runtime):
        user = await account(client, name="Burst")
        agent = await create_agent(client, user.headers)
        results = await asyncio.gather(
            *(
                client.post(
                    "/api/chat/agent",
                    json={"message": f"m{i}", "agent_id": agent["id"]},
                    headers=user.headers,
                )
                for i in range(10)
            )
        )
        codes = sorted(r.status_code for r in results)
        assert codes.count(200) == 4, codes
        assert all(r.status_code == 409 for r in results if r.status_code != 200)
        r = await client.get("/api/conversations", headers=user.headers)
        assert len(r.json()["items"]) == 4


async def test_the_budget_list_is_paged(settings: Settings) -> None:
    async with app_client(settings, rate_limit_global=10_000) as (client, _runtime):
        admin = await account(client, name="Admin")
        agent = await create_agent(client, admin.headers)
        made = []
        for i in range(7):
            owner = await account(client, name=f"U{i}")
            body = {"scope": "user", "scope_id": owner.id, "max_tokens": 1000 + i}
            r = await client.post("/api/admin/budgets", json=body, headers=admin.headers)
            assert r.status_code == 201, r.text
            made.append(r.json()["id"])
        r = await client.post(
            "/api/admin/budgets",
            json={"scope": "agent", "scope_id": agent["id"], "max_tokens": 5},
            headers=admin.headers,
        )
        assert r.status_code == 201, r.text
        made.append(r.json()["id"])

        seen: list[str] = []
        params: dict[str, str] = {"limit": "3"}
        while True:
            r = await client.get("/api/admin/budgets", params=params, headers=admin.headers)
            assert r.status_code == 200, r.text
            page = r.json()
            assert len(page["items"]) <= 3
            seen += [b["id"] for b in page["items"]]
            if page["next_cursor"] is None:
                break
            params = {"limit": "3", "cursor": page["next_cursor"]}
        assert seen == made  # oldest first, each once
        # a filter pages too
        r = await client.get(
            "/api/admin/budgets", params={"scope": "user", "limit": "5"}, headers=admin.headers
        )
        page = r.json()
        assert [b["id"] for b in page["items"]] == made[:5] and page["next_cursor"]
        r = await client.get(
            "/api/admin/budgets",
            params={"scope": "user", "limit": "5", "cursor": page["next_cursor"]},
            headers=admin.headers,
        )
        assert [b["id"] for b in r.json()["items"]] == made[5:7]
        assert r.json()["next_cursor"] is None
        # the default page size, and clear 422s for a bad limit or cursor
        r = await client.get("/api/admin/budgets", headers=admin.headers)
        assert len(r.json()["items"]) == 8 and r.json()["next_cursor"] is None
        for bad in ({"limit": "0"}, {"limit": "101"}, {"cursor": "nope"}):
            r = await client.get("/api/admin/budgets", params=bad, headers=admin.headers)
            assert r.status_code == 422, (bad, r.text)
        assert UUID(seen[0])
