"""Roles: admins list and manage users; deactivation cuts tokens and keys off at once;
an admin's read of someone else's conversation is written to the audit trail."""

from __future__ import annotations

import httpx

from employeevirtual.runtime import Runtime
from support.access import account, api_key, audit_rows, counts
from support.api import create_agent


async def test_first_account_is_admin_and_lists_users(client: httpx.AsyncClient) -> None:
    admin = await account(client, name="Admin")
    user = await account(client, name="Bob")
    me = (await client.get("/api/users/me", headers=admin.headers)).json()
    assert me["role"] == "admin"
    r = await client.get("/api/admin/users", params={"limit": 1}, headers=admin.headers)
    assert r.status_code == 200, r.text
    page = r.json()
    assert len(page["items"]) == 1
    assert page["next_cursor"]
    r = await client.get(
        "/api/admin/users", params={"cursor": page["next_cursor"]}, headers=admin.headers
    )
    emails = {page["items"][0]["email"], *(u["email"] for u in r.json()["items"])}
    assert emails == {admin.email, user.email}
    assert "password" not in r.text
    r = await client.get("/api/admin/users", headers=user.headers)
    assert r.status_code == 403
    assert "admin role" in r.json()["detail"]


async def test_deactivation_stops_tokens_and_keys_at_once(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    admin = await account(client, name="Admin")
    user = await account(client, name="Bob")
    key = (await api_key(client, user))["key"]
    key_headers = {"X-API-Key": key}
    assert (await client.get("/api/users/me", headers=user.headers)).status_code == 200
    assert (await client.get("/api/users/me", headers=key_headers)).status_code == 200

    r = await client.patch(
        f"/api/admin/users/{user.id}", json={"is_active": False}, headers=admin.headers
    )
    assert r.status_code == 200, r.text
    assert r.json()["is_active"] is False
    for headers in (user.headers, key_headers, {"Authorization": f"Bearer {key}"}):
        r = await client.get("/api/users/me", headers=headers)
        assert r.status_code == 401, r.text
    # and a deactivated user cannot log in again
    r = await client.post("/api/auth/login", data={"username": user.email, "password": "x" * 12})
    assert r.status_code == 401
    (row,) = [r for r in await audit_rows(runtime, "user.update") if r["target_id"] == user.id]
    assert row["details"] == {"is_active": False}
    assert str(row["actor_id"]) == admin.id

    # reactivation brings the same credentials back
    r = await client.patch(
        f"/api/admin/users/{user.id}", json={"is_active": True}, headers=admin.headers
    )
    assert r.status_code == 200
    assert (await client.get("/api/users/me", headers=key_headers)).status_code == 200


async def test_role_change_and_self_protection(client: httpx.AsyncClient, runtime: Runtime) -> None:
    admin = await account(client, name="Admin")
    user = await account(client, name="Bob")
    r = await client.patch(
        f"/api/admin/users/{user.id}", json={"role": "admin"}, headers=admin.headers
    )
    assert r.json()["role"] == "admin"
    assert (await client.get("/api/admin/users", headers=user.headers)).status_code == 200

    before = await counts(runtime)
    for body in ({"is_active": False}, {"role": "user"}):
        r = await client.patch(f"/api/admin/users/{admin.id}", json=body, headers=admin.headers)
        assert r.status_code == 409
        assert "yourself" in r.json()["detail"]
    for body in ({"role": "root"}, {"is_active": None}, {"email": "x@example.com"}):
        r = await client.patch(f"/api/admin/users/{user.id}", json=body, headers=admin.headers)
        assert r.status_code == 422, body
    r = await client.patch(
        "/api/admin/users/00000000-0000-4000-8000-000000000000",
        json={"role": "user"},
        headers=admin.headers,
    )
    assert r.status_code == 404
    assert await counts(runtime) == before


async def test_admin_audit_read_of_a_conversation(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    admin = await account(client, name="Admin")
    owner = await account(client, name="Olga")
    agent = await create_agent(client, owner.headers)
    r = await client.post(
        "/api/chat/agent",
        json={"message": "payroll", "agent_id": agent["id"]},
        headers=owner.headers,
    )
    cid = r.json()["conversation_id"]

    # the owner's own reads are not audit reads
    assert (await client.get(f"/api/conversations/{cid}", headers=owner.headers)).status_code == 200
    assert await audit_rows(runtime, "conversation.audit_read") == []

    r = await client.get(f"/api/conversations/{cid}", headers=admin.headers)
    assert r.status_code == 200
    assert r.json()["user_id"] == owner.id
    r = await client.get(f"/api/conversations/{cid}/messages", headers=admin.headers)
    assert r.status_code == 200
    assert r.json()["messages"][0]["content"] == "payroll"
    rows = await audit_rows(runtime, "conversation.audit_read")
    assert sorted(r["details"]["read"] for r in rows) == ["conversation", "messages"]
    for row in rows:
        assert str(row["actor_id"]) == admin.id
        assert row["target_id"] == cid
        assert row["details"]["owner_id"] == owner.id
        assert row["client_ip"] == "203.0.113.7"
    # the admin sees the conversation but cannot change, delete or continue it
    r = await client.patch(f"/api/conversations/{cid}", json={"title": "x"}, headers=admin.headers)
    assert r.status_code == 404
    r = await client.post(
        "/api/chat/agent", json={"message": "hi", "conversation_id": cid}, headers=admin.headers
    )
    assert r.status_code == 404
    # nor list it among their own
    r = await client.get("/api/conversations", headers=admin.headers)
    assert cid not in r.text
