"""Mass assignment is closed: no body field and no query parameter lets a client set ids,
the owner, seq, counters, role, activity or timestamps. Bodies forbid unknown fields and
every endpoint refuses query parameters it does not declare, both with a 422 that names
the offending field; nothing is written."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from employeevirtual.runtime import Runtime
from employeevirtual.settings import Settings
from support.access import Account, account, counts
from support.api import PASSWORD, create_agent
from support.knowledge import create_base, upload

FORBIDDEN = {
    "id": "00000000-0000-4000-8000-000000000001",
    "user_id": "00000000-0000-4000-8000-000000000002",
    "owner_id": "00000000-0000-4000-8000-000000000002",
    "role": "admin",
    "is_active": True,
    "seq": 1,
    "message_count": 0,
    "total_tokens": 0,
    "total_cost": 0,
    "synced_seq": 999,
    "created_at": "2000-01-01T00:00:00Z",
    "updated_at": "2000-01-01T00:00:00Z",
    "password_hash": "x",
    "digest": "x",
}


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Every operation times every forbidden parameter is more requests than the per-address
    flood guard lets through in a minute; that guard has its own tests."""
    return settings.model_copy(update={"rate_limit_global": 100_000})


async def _owner_with_a_conversation(
    client: httpx.AsyncClient,
) -> tuple[Account, Account, dict[str, Any], str]:
    """An admin, a user, the user's agent and a conversation with it."""
    admin = await account(client, name="Admin")
    user = await account(client)
    agent = await create_agent(client, user.headers)
    r = await client.post(
        "/api/chat/agent", json={"message": "hi", "agent_id": agent["id"]}, headers=user.headers
    )
    return admin, user, agent, r.json()["conversation_id"]


async def test_no_body_accepts_a_forbidden_field(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    admin, user, agent, cid = await _owner_with_a_conversation(client)
    bodies: list[tuple[str, str, dict[str, Any], dict[str, str], set[str]]] = [
        (
            "POST",
            "/api/auth/register",
            {"email": "new@example.com", "password": PASSWORD, "name": "N"},
            {},
            set(),
        ),
        ("POST", "/api/agents", {"name": "A"}, user.headers, set()),
        ("PATCH", f"/api/agents/{agent['id']}", {"description": "d"}, user.headers, set()),
        ("POST", "/api/chat/agent", {"message": "m", "agent_id": agent["id"]}, user.headers, set()),
        ("PATCH", f"/api/conversations/{cid}", {"title": "t"}, user.headers, set()),
        ("POST", "/api/api-keys", {"name": "k"}, user.headers, set()),
        # an admin may set role and is_active here, nothing else
        ("PATCH", f"/api/admin/users/{user.id}", {}, admin.headers, {"role", "is_active"}),
    ]
    before = await counts(runtime)
    tried = 0
    for method, url, valid, headers, allowed in bodies:
        for name, value in FORBIDDEN.items():
            if name in allowed:
                continue
            r = await client.request(method, url, json={**valid, name: value}, headers=headers)
            tried += 1
            assert r.status_code == 422, (method, url, name, r.text)
            assert name in r.text  # the error names the field
    # nested objects forbid unknown fields too
    r = await client.patch(
        f"/api/agents/{agent['id']}",
        json={"model_settings": {"temperature": 1, "user_id": FORBIDDEN["user_id"]}},
        headers=user.headers,
    )
    assert r.status_code == 422
    assert tried == 7 * len(FORBIDDEN) - 2
    assert await counts(runtime) == before
    # and nothing changed on the objects themselves
    me = (await client.get("/api/users/me", headers=user.headers)).json()
    assert (me["role"], me["is_active"]) == ("user", True)
    conv = (await client.get(f"/api/conversations/{cid}", headers=user.headers)).json()
    assert (conv["user_id"], conv["message_count"]) == (user.id, 2)


async def test_no_endpoint_accepts_an_undeclared_query_parameter(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    """Generated from the OpenAPI document, so a new endpoint is covered without a new line."""
    admin, user, agent, cid = await _owner_with_a_conversation(client)
    key = (await client.post("/api/api-keys", json={"name": "k"}, headers=user.headers)).json()
    base = await create_base(client, user.headers)
    document = await upload(client, user.headers, base["id"], "n.txt", b"a note")
    budget = await client.post(
        "/api/admin/budgets",
        json={"scope": "agent", "scope_id": agent["id"], "max_tokens": 10**6},
        headers=admin.headers,
    )
    path_values = {
        "agent_id": agent["id"],
        "conversation_id": cid,
        "key_id": key["id"],
        "user_id": user.id,
        "erasure_id": str(uuid.uuid4()),
        "export_id": str(uuid.uuid4()),
        "base_id": base["id"],
        "document_id": document["id"],
        "budget_id": budget.json()["id"],
        "turn_id": str(uuid.uuid4()),
        "message_id": str(uuid.uuid4()),
        "server_id": str(uuid.uuid4()),
        "memory_id": str(uuid.uuid4()),
    }
    schema = (await client.get("/openapi.json")).json()
    before = await counts(runtime)
    tried = 0
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            declared = {p["name"] for p in operation.get("parameters", []) if p["in"] == "query"}
            url = path.format(**path_values)
            headers = admin.headers if path.startswith("/api/admin") else user.headers
            for name, value in FORBIDDEN.items():
                if name in declared:
                    continue
                r = await client.request(
                    method.upper(), url, params={name: str(value)}, headers=headers
                )
                tried += 1
                if path.startswith("/v1/"):  # the OpenAI door: OpenAI's 400 and error shape
                    assert r.status_code == 400, (method, path, name, r.status_code, r.text)
                    assert f"unknown query parameters: {name}" in r.json()["error"]["message"]
                    continue
                assert r.status_code == 422, (method, path, name, r.status_code, r.text)
                assert f"unknown query parameters: {name}" in r.json()["detail"]
    assert tried > 20 * len(FORBIDDEN)
    assert await counts(runtime) == before
    # declared parameters still work
    r = await client.get("/api/conversations", params={"limit": 5}, headers=user.headers)
    assert r.status_code == 200
