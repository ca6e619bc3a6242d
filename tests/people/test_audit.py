"""GET /api/admin/audit: the trail, newest first, filtered and keyset-paged; exports and
erasures are on it."""

from __future__ import annotations

import httpx

from support.access import account


async def test_audit_trail_filters_and_pages(client: httpx.AsyncClient) -> None:
    admin = await account(client, name="Admin")
    users = [await account(client, name=f"User{i}") for i in range(3)]
    r = await client.post(f"/api/admin/users/{users[0].id}/export", headers=admin.headers)
    assert r.status_code == 202
    export_id = r.json()["id"]
    r = await client.request(
        "DELETE", f"/api/admin/users/{users[1].id}", json={}, headers=admin.headers
    )
    assert r.status_code == 202
    erasure_id = r.json()["id"]

    r = await client.get(
        "/api/admin/audit", params={"action": "user.export"}, headers=admin.headers
    )
    assert r.status_code == 200, r.text
    (entry,) = r.json()["items"]
    assert entry["actor_id"] == admin.id and entry["target_id"] == users[0].id
    assert entry["details"] == {"export_id": export_id}
    r = await client.get(
        "/api/admin/audit", params={"action": "user.erasure_requested"}, headers=admin.headers
    )
    assert [e["details"]["erasure_id"] for e in r.json()["items"]] == [erasure_id]

    # every row exactly once over pages of 2, newest first
    everything = (
        await client.get("/api/admin/audit", params={"limit": 100}, headers=admin.headers)
    ).json()
    assert everything["next_cursor"] is None
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/api/admin/audit", params=params, headers=admin.headers)).json()
        seen += [e["id"] for e in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [e["id"] for e in everything["items"]] and len(seen) == len(set(seen)) > 6
    stamps = [e["created_at"] for e in everything["items"]]
    assert stamps == sorted(stamps, reverse=True)

    # by actor and by time
    r = await client.get(
        "/api/admin/audit", params={"actor_id": users[2].id}, headers=admin.headers
    )
    assert {e["action"] for e in r.json()["items"]} == {"user.register", "auth.login"}
    r = await client.get(
        "/api/admin/audit", params={"until": "2000-01-01T00:00:00Z"}, headers=admin.headers
    )
    assert r.json()["items"] == []
    r = await client.get("/api/admin/audit", params={"since": "2000-01-01"}, headers=admin.headers)
    assert r.status_code == 422 and "timezone" in r.text
    r = await client.get("/api/admin/audit", params={"cursor": "%%%"}, headers=admin.headers)
    assert r.status_code == 422


async def test_a_cursor_with_a_naive_time_is_a_422(client: httpx.AsyncClient) -> None:
    """Found by the Schemathesis run: a naive datetime in the cursor reached SQL (500)."""
    import base64

    admin = await account(client, name="Admin")
    naive = base64.urlsafe_b64encode(
        b"2026-01-01T00:00:00|00000000-0000-0000-0000-000000000001"
    ).decode()
    r = await client.get("/api/admin/audit", params={"cursor": naive}, headers=admin.headers)
    assert r.status_code == 422, r.text
    assert "cursor is not valid" in r.json()["detail"]
