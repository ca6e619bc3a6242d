"""The authorization matrix: every endpoint x every kind of caller, over HTTP against the
real app. Each cell names the expected status; for callers who must not see the owner's
data, no response may carry any of it (ids, email, instructions, message text).

A new endpoint without a row here fails ``test_matrix_covers_every_endpoint``."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from employeevirtual.runtime import Runtime
from employeevirtual.settings import Settings
from employeevirtual.stores.sql.engine import write_transaction
from employeevirtual.stores.sql.memory import MemoryRepository, MemoryScope
from support.access import Account, account, api_key, audit_rows
from support.api import PASSWORD
from support.server_process import free_port

MCP_PORT = free_port()  # nothing listens there: a registered server is "unavailable"
MCP_ADMIN = "/api/admin/mcp-servers"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """MCP servers may be registered (issue 13) at a loopback port where nothing listens."""
    update = {"mcp_allowed_hosts": [f"127.0.0.1:{MCP_PORT}"], "mcp_allow_private": True}
    return settings.model_copy(update=update)


def _mcp_server_body() -> dict[str, Any]:
    url = f"http://127.0.0.1:{MCP_PORT}/mcp"
    return {"name": f"m{uuid.uuid4().hex[:8]}", "transport": "http", "url": url}


PRINCIPALS = ("owner", "other", "admin", "anonymous", "deactivated", "revoked_key")
# callers that must never receive the owner's data
OUTSIDERS = ("other", "anonymous", "deactivated", "revoked_key")


@dataclass
class World:
    owner: Account
    headers: dict[str, dict[str, str]]
    agent_id: str
    conversation_id: str
    turn_id: str = ""
    base_id: str = ""
    document_id: str = ""
    agent_message_id: str = ""
    erasure_id: str = ""
    export_id: str = ""
    secrets: set[str] = field(default_factory=set)
    runtime: Runtime | None = None  # for what is made straight in the stores


@dataclass
class Fresh:
    """Resources made for one cell, for the calls that destroy what they touch."""

    agent_id: str = ""
    conversation_id: str = ""
    key_id: str = ""
    base_id: str = ""
    document_id: str = ""
    budget_id: str = ""
    mcp_server_id: str = ""
    user_id: str = ""
    message_id: str = ""
    memory_id: str = ""


Request = tuple[str, str, dict[str, Any]]


@dataclass(frozen=True)
class Row:
    method: str
    route: str
    expect: tuple[int, int, int, int, int, int]  # in PRINCIPALS order
    request: Callable[[World, Fresh], Request]
    # "agent", "conversation", "exchange", "handoff", "key", "base", "document" or "user": anew
    # per cell
    fresh: str = ""
    # login answers with a token for the credentials sent, whoever sends them
    check_leaks: bool = True


def E(*codes: int) -> tuple[int, int, int, int, int, int]:
    assert len(codes) == len(PRINCIPALS)
    return codes  # type: ignore[return-value]


def _register(_w: World, _f: Fresh) -> Request:
    email = f"new-{uuid.uuid4().hex[:8]}@example.com"
    body = {"email": email, "password": PASSWORD, "name": "Nova"}
    return "POST", "/api/auth/register", {"json": body}


def _today() -> dict[str, str]:
    day = datetime.now(UTC).date().isoformat()
    return {"from": day, "to": day, "group_by": "user,agent"}


AUTHED_200 = E(200, 200, 200, 401, 401, 401)
AUTHED_201 = E(201, 201, 201, 401, 401, 401)
PUBLIC_200 = E(200, 200, 200, 200, 200, 200)
OWNER_OR_ADMIN = E(200, 404, 200, 401, 401, 401)
KB = "/api/knowledge-bases"

ROWS: list[Row] = [
    Row("GET", "/health/live", PUBLIC_200, lambda w, f: ("GET", "/health/live", {})),
    Row("GET", "/health/ready", PUBLIC_200, lambda w, f: ("GET", "/health/ready", {})),
    Row("POST", "/api/auth/register", E(201, 201, 201, 201, 201, 201), _register),
    Row("GET", "/api/auth/signup", PUBLIC_200, lambda w, f: ("GET", "/api/auth/signup", {})),
    Row(
        "POST",
        "/api/auth/login",
        PUBLIC_200,
        lambda w, f: (
            "POST",
            "/api/auth/login",
            {"data": {"username": w.owner.email, "password": PASSWORD}},
        ),
        check_leaks=False,
    ),
    Row("GET", "/api/users/me", AUTHED_200, lambda w, f: ("GET", "/api/users/me", {})),
    Row("GET", "/api/agents", AUTHED_200, lambda w, f: ("GET", "/api/agents", {})),
    # others' shared agents only when asked; never another user's private one (admins: audited)
    Row(
        "GET",
        "/api/agents",
        AUTHED_200,
        lambda w, f: ("GET", "/api/agents", {"params": {"scope": "all", "limit": "100"}}),
    ),
    Row(
        "GET",
        "/api/agents",
        AUTHED_200,
        lambda w, f: ("GET", "/api/agents", {"params": {"scope": "shared"}}),
    ),
    Row("GET", "/api/tools", AUTHED_200, lambda w, f: ("GET", "/api/tools", {})),
    # MCP servers (issue 13): admins register them; everyone lists those offered to them
    Row(
        "POST",
        MCP_ADMIN,
        E(403, 403, 201, 401, 401, 401),
        lambda w, f: ("POST", MCP_ADMIN, {"json": _mcp_server_body()}),
    ),
    Row("GET", MCP_ADMIN, E(403, 403, 200, 401, 401, 401), lambda w, f: ("GET", MCP_ADMIN, {})),
    Row(
        "GET",
        MCP_ADMIN + "/{server_id}",
        E(403, 403, 200, 401, 401, 401),
        lambda w, f: ("GET", f"{MCP_ADMIN}/{f.mcp_server_id}", {}),
        fresh="mcp_server",
    ),
    Row(
        "PATCH",
        MCP_ADMIN + "/{server_id}",
        E(403, 403, 200, 401, 401, 401),
        lambda w, f: ("PATCH", f"{MCP_ADMIN}/{f.mcp_server_id}", {"json": {"description": "d"}}),
        fresh="mcp_server",
    ),
    Row(
        "DELETE",
        MCP_ADMIN + "/{server_id}",
        E(403, 403, 204, 401, 401, 401),
        lambda w, f: ("DELETE", f"{MCP_ADMIN}/{f.mcp_server_id}", {}),
        fresh="mcp_server",
    ),
    Row(
        "POST",
        MCP_ADMIN + "/{server_id}/refresh",
        E(403, 403, 200, 401, 401, 401),
        lambda w, f: ("POST", f"{MCP_ADMIN}/{f.mcp_server_id}/refresh", {}),
        fresh="mcp_server",
    ),
    Row("GET", "/api/mcp-servers", AUTHED_200, lambda w, f: ("GET", "/api/mcp-servers", {})),
    Row(
        "POST",
        "/api/agents",
        AUTHED_201,
        lambda w, f: ("POST", "/api/agents", {"json": {"name": "Mine"}}),
    ),
    # delegates must be the agent owner's own or shared: the owner's private agent is nobody
    # else's to name, an admin's included (issue 13)
    Row(
        "POST",
        "/api/agents",
        E(201, 422, 422, 401, 401, 401),
        lambda w, f: (
            "POST",
            "/api/agents",
            {"json": {"name": "Lead", "delegate_ids": [w.agent_id]}},
        ),
    ),
    Row(
        "GET",
        "/api/agents/{agent_id}",
        E(200, 404, 200, 401, 401, 401),
        lambda w, f: ("GET", f"/api/agents/{w.agent_id}", {}),
    ),
    Row(
        "PATCH",
        "/api/agents/{agent_id}",
        E(200, 404, 200, 401, 401, 401),
        lambda w, f: ("PATCH", f"/api/agents/{w.agent_id}", {"json": {"description": "d"}}),
    ),
    Row(
        "DELETE",
        "/api/agents/{agent_id}",
        E(204, 404, 204, 401, 401, 401),
        lambda w, f: ("DELETE", f"/api/agents/{f.agent_id}", {}),
        fresh="agent",
    ),
    Row(
        "POST",
        "/api/chat/agent",
        E(200, 404, 200, 401, 401, 401),
        lambda w, f: (
            "POST",
            "/api/chat/agent",
            {"json": {"message": "hi", "agent_id": w.agent_id}},
        ),
    ),
    Row(
        "POST",
        "/api/chat/agent",
        E(200, 404, 404, 401, 401, 401),
        lambda w, f: (
            "POST",
            "/api/chat/agent",
            {"params": {"message": "again", "conversation_id": w.conversation_id}},
        ),
    ),
    # a handoff: the owner's conversation continued with another of the owner's agents
    Row(
        "POST",
        "/api/chat/agent",
        E(200, 404, 404, 401, 401, 401),
        lambda w, f: (
            "POST",
            "/api/chat/agent",
            {
                "json": {
                    "message": "over to you",
                    "conversation_id": f.conversation_id,
                    "agent_id": f.agent_id,
                }
            },
        ),
        fresh="handoff",
    ),
    Row(
        "GET",
        "/api/chat/turns/{turn_id}/events",
        E(200, 404, 404, 401, 401, 401),  # a turn's events are its owner's alone
        lambda w, f: ("GET", f"/api/chat/turns/{w.turn_id}/events", {}),
    ),
    Row(
        "POST",
        "/api/chat/turns/{turn_id}/cancel",
        E(409, 404, 404, 401, 401, 401),  # the owner's turn has ended: nothing to cancel
        lambda w, f: ("POST", f"/api/chat/turns/{w.turn_id}/cancel", {}),
    ),
    Row(
        "POST",
        "/api/conversations/{conversation_id}/regenerate",
        E(200, 404, 404, 401, 401, 401),  # answering again is the owner's, like a turn
        lambda w, f: ("POST", f"/api/conversations/{w.conversation_id}/regenerate", {}),
    ),
    Row(
        "PATCH",
        "/api/conversations/{conversation_id}/messages/{message_id}",
        E(200, 404, 404, 401, 401, 401),
        lambda w, f: (
            "PATCH",
            f"/api/conversations/{f.conversation_id}/messages/{f.message_id}",
            {"json": {"content": "edited"}},
        ),
        fresh="exchange",
    ),
    Row("GET", "/v1/models", AUTHED_200, lambda w, f: ("GET", "/v1/models", {})),
    Row(
        "POST",
        "/v1/chat/completions",
        E(200, 404, 200, 401, 401, 401),
        lambda w, f: (
            "POST",
            "/v1/chat/completions",
            {"json": {"model": w.agent_id, "messages": [{"role": "user", "content": "hi"}]}},
        ),
    ),
    Row("GET", "/api/conversations", AUTHED_200, lambda w, f: ("GET", "/api/conversations", {})),
    Row(
        "GET",
        "/api/conversations/{conversation_id}",
        E(200, 404, 200, 401, 401, 401),
        lambda w, f: ("GET", f"/api/conversations/{w.conversation_id}", {}),
    ),
    Row(
        "PATCH",
        "/api/conversations/{conversation_id}",
        E(200, 404, 404, 401, 401, 401),
        lambda w, f: (
            "PATCH",
            f"/api/conversations/{w.conversation_id}",
            {"json": {"title": "renamed"}},
        ),
    ),
    Row(
        "DELETE",
        "/api/conversations/{conversation_id}",
        E(204, 404, 404, 401, 401, 401),
        lambda w, f: ("DELETE", f"/api/conversations/{f.conversation_id}", {}),
        fresh="conversation",
    ),
    Row(
        "GET",
        "/api/conversations/{conversation_id}/messages",
        E(200, 404, 200, 401, 401, 401),
        lambda w, f: ("GET", f"/api/conversations/{w.conversation_id}/messages", {}),
    ),
    Row(
        "POST",
        "/api/api-keys",
        AUTHED_201,
        lambda w, f: ("POST", "/api/api-keys", {"json": {"name": "k"}}),
    ),
    Row("GET", "/api/api-keys", AUTHED_200, lambda w, f: ("GET", "/api/api-keys", {})),
    Row(
        "DELETE",
        "/api/api-keys/{key_id}",
        E(204, 404, 404, 401, 401, 401),
        lambda w, f: ("DELETE", f"/api/api-keys/{f.key_id}", {}),
        fresh="key",
    ),
    Row("GET", "/api/knowledge-bases", AUTHED_200, lambda w, f: ("GET", KB, {})),
    Row(
        "POST",
        "/api/knowledge-bases",
        AUTHED_201,
        lambda w, f: ("POST", KB, {"json": {"name": "Mine"}}),
    ),
    Row(
        "GET",
        "/api/knowledge-bases/{base_id}",
        OWNER_OR_ADMIN,
        lambda w, f: ("GET", f"{KB}/{w.base_id}", {}),
    ),
    Row(
        "PATCH",
        "/api/knowledge-bases/{base_id}",
        OWNER_OR_ADMIN,
        lambda w, f: ("PATCH", f"{KB}/{w.base_id}", {"json": {"description": "d"}}),
    ),
    Row(
        "DELETE",
        "/api/knowledge-bases/{base_id}",
        E(204, 404, 204, 401, 401, 401),
        lambda w, f: ("DELETE", f"{KB}/{f.base_id}", {}),
        fresh="base",
    ),
    Row(
        "POST",
        "/api/knowledge-bases/{base_id}/documents",
        E(202, 404, 202, 401, 401, 401),
        lambda w, f: (
            "POST",
            f"{KB}/{w.base_id}/documents",
            {"files": {"file": ("note.txt", b"a short note")}},
        ),
    ),
    Row(
        "GET",
        "/api/knowledge-bases/{base_id}/documents",
        OWNER_OR_ADMIN,
        lambda w, f: ("GET", f"{KB}/{w.base_id}/documents", {}),
    ),
    Row(
        "GET",
        "/api/knowledge-bases/{base_id}/documents/{document_id}",
        OWNER_OR_ADMIN,
        lambda w, f: ("GET", f"{KB}/{w.base_id}/documents/{w.document_id}", {}),
    ),
    Row(
        "GET",
        "/api/knowledge-bases/{base_id}/documents/{document_id}/original",
        OWNER_OR_ADMIN,
        lambda w, f: ("GET", f"{KB}/{w.base_id}/documents/{w.document_id}/original", {}),
    ),
    Row(
        "DELETE",
        "/api/knowledge-bases/{base_id}/documents/{document_id}",
        E(204, 404, 204, 401, 401, 401),
        lambda w, f: ("DELETE", f"{KB}/{w.base_id}/documents/{f.document_id}", {}),
        fresh="document",
    ),
    Row(
        "POST",
        "/api/knowledge-bases/{base_id}/search",
        OWNER_OR_ADMIN,
        lambda w, f: ("POST", f"{KB}/{w.base_id}/search", {"json": {"query": "note"}}),
    ),
    Row(
        "GET",
        "/api/search",
        AUTHED_200,  # everyone searches only their own data: outsiders get no hit of the owner's
        lambda w, f: ("GET", "/api/search", {"params": {"q": "confidential"}}),
    ),
    Row(
        "GET",
        "/api/admin/users",
        E(403, 403, 200, 401, 401, 401),
        lambda w, f: ("GET", "/api/admin/users", {}),
    ),
    Row(
        "PATCH",
        "/api/admin/users/{user_id}",
        E(403, 403, 200, 401, 401, 401),
        lambda w, f: ("PATCH", f"/api/admin/users/{w.owner.id}", {"json": {"is_active": True}}),
    ),
    # usage analytics: everyone sees their own (the owner's rows are not in another's answer)
    Row(
        "GET",
        "/api/analytics/usage",
        AUTHED_200,
        lambda w, f: ("GET", "/api/analytics/usage", {"params": _today()}),
    ),
    Row(
        "GET",
        "/api/analytics/usage",
        E(200, 404, 200, 401, 401, 401),
        lambda w, f: (
            "GET",
            "/api/analytics/usage",
            {"params": {**_today(), "user_id": w.owner.id}},
        ),
    ),
    # feedback: only the conversation's owner rates its agent answers
    Row(
        "POST",
        "/api/conversations/{conversation_id}/messages/{message_id}/feedback",
        E(200, 404, 404, 401, 401, 401),
        lambda w, f: (
            "POST",
            f"/api/conversations/{w.conversation_id}/messages/{w.agent_message_id}/feedback",
            {"json": {"rating": "up"}},
        ),
    ),
    # budgets: admins only
    Row(
        "POST",
        "/api/admin/budgets",
        E(403, 403, 201, 401, 401, 401),
        lambda w, f: (
            "POST",
            "/api/admin/budgets",
            {"json": {"scope": "agent", "scope_id": f.agent_id, "max_cost": "5"}},
        ),
        fresh="agent",
    ),
    Row(
        "GET",
        "/api/admin/budgets",
        E(403, 403, 200, 401, 401, 401),
        lambda w, f: ("GET", "/api/admin/budgets", {}),
    ),
    Row(
        "GET",
        "/api/admin/budgets/{budget_id}",
        E(403, 403, 200, 401, 401, 401),
        lambda w, f: ("GET", f"/api/admin/budgets/{f.budget_id}", {}),
        fresh="budget",
    ),
    Row(
        "PATCH",
        "/api/admin/budgets/{budget_id}",
        E(403, 403, 200, 401, 401, 401),
        lambda w, f: (
            "PATCH",
            f"/api/admin/budgets/{f.budget_id}",
            {"json": {"max_tokens": 2000}},
        ),
        fresh="budget",
    ),
    Row(
        "DELETE",
        "/api/admin/budgets/{budget_id}",
        E(403, 403, 204, 401, 401, 401),
        lambda w, f: ("DELETE", f"/api/admin/budgets/{f.budget_id}", {}),
        fresh="budget",
    ),
    # the owner's export was made with the world: a second within the interval is a 429
    Row(
        "POST",
        "/api/users/me/export",
        E(429, 202, 202, 401, 401, 401),
        lambda w, f: ("POST", "/api/users/me/export", {}),
    ),
    Row(
        "GET", "/api/users/me/export", AUTHED_200, lambda w, f: ("GET", "/api/users/me/export", {})
    ),
    Row(
        "POST",
        "/api/admin/users/{user_id}/export",
        E(403, 403, 202, 401, 401, 401),
        lambda w, f: ("POST", f"/api/admin/users/{f.user_id}/export", {}),
        fresh="user",
    ),
    Row(
        "GET",
        "/api/exports/{export_id}",
        E(200, 404, 200, 401, 401, 401),
        lambda w, f: ("GET", f"/api/exports/{w.export_id}", {}),
    ),
    Row(
        "GET",
        "/api/exports/{export_id}/download",
        E(200, 404, 200, 401, 401, 401),
        lambda w, f: ("GET", f"/api/exports/{w.export_id}/download", {}),
        check_leaks=False,  # a ZIP; outsiders get a 404 (checked), never a body to search
    ),
    Row(
        "DELETE",
        "/api/admin/users/{user_id}",
        E(403, 403, 202, 401, 401, 401),
        lambda w, f: ("DELETE", f"/api/admin/users/{f.user_id}", {"json": {}}),
        fresh="user",
    ),
    Row(
        "GET",
        "/api/admin/erasures/{erasure_id}",
        E(403, 403, 200, 401, 401, 401),
        lambda w, f: ("GET", f"/api/admin/erasures/{w.erasure_id}", {}),
    ),
    Row(
        "GET",
        "/api/admin/audit",
        E(403, 403, 200, 401, 401, 401),
        lambda w, f: ("GET", "/api/admin/audit", {"params": {"limit": 5}}),
        check_leaks=False,  # the admin-only trail names users by id; outsiders get 401/403
    ),
    # memory (issue 18): each person's own; another's memory answers 404, an admin's too
    Row("GET", "/api/memories", AUTHED_200, lambda w, f: ("GET", "/api/memories", {})),
    Row(
        "DELETE",
        "/api/memories",
        AUTHED_200,
        lambda w, f: ("DELETE", "/api/memories", {"params": {"agent_id": w.agent_id}}),
        fresh="memory",
    ),
    Row(
        "PATCH",
        "/api/memories/{memory_id}",
        E(200, 404, 404, 401, 401, 401),
        lambda w, f: ("PATCH", f"/api/memories/{f.memory_id}", {"json": {"content": "changed"}}),
        fresh="memory",
    ),
    Row(
        "DELETE",
        "/api/memories/{memory_id}",
        E(204, 404, 404, 401, 401, 401),
        lambda w, f: ("DELETE", f"/api/memories/{f.memory_id}", {}),
        fresh="memory",
    ),
    # last: it erases whoever calls it (the owner, then "other"); the only admin may not
    Row(
        "DELETE",
        "/api/users/me",
        E(202, 202, 409, 401, 401, 401),
        lambda w, f: ("DELETE", "/api/users/me", {"json": {"password": PASSWORD}}),
    ),
]


async def _agent(client: httpx.AsyncClient, owner: Account, marker: str) -> str:
    body = {"name": "Private", "instructions": f"secret instructions {marker}"}
    r = await client.post("/api/agents", json=body, headers=owner.headers)
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def _conversation(
    client: httpx.AsyncClient, owner: Account, agent_id: str, marker: str
) -> str:
    body = {"message": f"confidential {marker}", "agent_id": agent_id}
    r = await client.post("/api/chat/agent", json=body, headers=owner.headers)
    assert r.status_code == 200, r.text
    return str(r.json()["conversation_id"])


async def _base(client: httpx.AsyncClient, owner: Account, marker: str) -> str:
    r = await client.post(KB, json={"name": f"Private {marker}"}, headers=owner.headers)
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def _document(client: httpx.AsyncClient, owner: Account, base_id: str, marker: str) -> str:
    r = await client.post(
        f"{KB}/{base_id}/documents",
        files={"file": (f"{marker}.txt", f"confidential {marker}".encode())},
        headers=owner.headers,
    )
    assert r.status_code == 202, r.text
    return str(r.json()["id"])


async def _world(client: httpx.AsyncClient) -> World:
    admin = await account(client, name="Admin")  # the first account is the admin
    owner = await account(client, name="Olga")
    other = await account(client, name="Otto")
    gone = await account(client, name="Dee")
    marker = uuid.uuid4().hex
    agent_id = await _agent(client, owner, marker)
    conversation_id = await _conversation(client, owner, agent_id, marker)
    revoked = await api_key(client, owner, "old")
    r = await client.delete(f"/api/api-keys/{revoked['id']}", headers=owner.headers)
    assert r.status_code == 204
    r = await client.patch(
        f"/api/admin/users/{gone.id}", json={"is_active": False}, headers=admin.headers
    )
    assert r.status_code == 200, r.text
    headers = {
        "owner": owner.headers,
        "other": other.headers,
        "admin": admin.headers,
        "anonymous": {},
        "deactivated": gone.headers,
        "revoked_key": {"X-API-Key": revoked["key"]},
    }
    r = await client.post(
        "/api/chat/agent",
        json={"message": f"streamed {marker}", "conversation_id": conversation_id},
        headers={**owner.headers, "Accept": "text/event-stream"},
    )
    assert r.status_code == 200 and "event: done" in r.text, r.text
    turn_id = r.headers["X-Turn-Id"]
    doomed = await account(client, name="Gone")
    r = await client.request(
        "DELETE", f"/api/admin/users/{doomed.id}", json={}, headers=admin.headers
    )
    assert r.status_code == 202, r.text
    erasure_id = r.json()["id"]
    r = await client.post("/api/users/me/export", headers=owner.headers)
    assert r.status_code == 202, r.text
    export_id = r.json()["id"]
    for _ in range(300):  # built in the background
        r = await client.get(f"/api/exports/{export_id}", headers=owner.headers)
        if r.json()["status"] == "ready":
            break
        await asyncio.sleep(0.1)
    assert r.json()["status"] == "ready", r.text
    world = World(
        owner,
        headers,
        agent_id,
        conversation_id,
        turn_id,
        erasure_id=erasure_id,
        export_id=export_id,
    )
    world.base_id = await _base(client, owner, marker)
    world.document_id = await _document(client, owner, world.base_id, marker)
    r = await client.get(f"/api/conversations/{conversation_id}/messages", headers=owner.headers)
    world.agent_message_id = next(
        m["id"] for m in r.json()["messages"] if m["message_type"] == "agent"
    )
    world.secrets |= {owner.id, owner.email, marker, agent_id, conversation_id, revoked["id"]}
    world.secrets |= {world.base_id, world.document_id}
    world.secrets.add(world.turn_id)
    world.secrets.add(revoked["prefix"])
    return world


async def _fresh(client: httpx.AsyncClient, world: World, kind: str) -> Fresh:
    fresh = Fresh()
    marker = uuid.uuid4().hex
    if kind == "agent":
        fresh.agent_id = await _agent(client, world.owner, marker)
    elif kind == "conversation":
        fresh.conversation_id = await _conversation(client, world.owner, world.agent_id, marker)
    elif kind == "handoff":
        fresh.conversation_id = await _conversation(client, world.owner, world.agent_id, marker)
        fresh.agent_id = await _agent(client, world.owner, marker)
    elif kind == "budget":
        fresh.agent_id = await _agent(client, world.owner, marker)
        body = {"scope": "agent", "scope_id": fresh.agent_id, "max_tokens": 1000}
        r = await client.post("/api/admin/budgets", json=body, headers=world.headers["admin"])
        assert r.status_code == 201, r.text
        fresh.budget_id = str(r.json()["id"])
    elif kind == "mcp_server":
        body = _mcp_server_body()
        r = await client.post(MCP_ADMIN, json=body, headers=world.headers["admin"])
        assert r.status_code == 201, r.text
        fresh.mcp_server_id = str(r.json()["id"])
    elif kind == "exchange":
        body = {"message": f"to edit {marker}", "agent_id": world.agent_id}
        r = await client.post("/api/chat/agent", json=body, headers=world.owner.headers)
        assert r.status_code == 200, r.text
        fresh.conversation_id = str(r.json()["conversation_id"])
        fresh.message_id = str(r.json()["user_message"]["id"])
    elif kind == "key":
        key = await api_key(client, world.owner, "temp")
        fresh.key_id = str(key["id"])
        world.secrets.add(key["prefix"])
    elif kind == "base":
        fresh.base_id = await _base(client, world.owner, marker)
    elif kind == "document":
        fresh.document_id = await _document(client, world.owner, world.base_id, marker)
    elif kind == "user":
        fresh.user_id = (await account(client, name="Ulla")).id
    elif kind == "memory":  # straight into SQL: a turn per cell would meet the chat rate limit
        assert world.runtime is not None
        memory_id = uuid.uuid4()
        scope = MemoryScope(
            user_id=uuid.UUID(world.owner.id),
            agent_id=uuid.UUID(world.agent_id),
            conversation_id=None,
            shared=True,
        )
        async with write_transaction(world.runtime.engine) as conn:
            await MemoryRepository(conn).add(
                memory_id=memory_id,
                scope=scope,
                content=f"my code is {marker}",
                source_message_id=None,
                source_conversation_id=None,
                source_tool_call=None,
                now=datetime.now(UTC),
            )
        fresh.memory_id = str(memory_id)
    world.secrets |= {
        marker,
        fresh.agent_id,
        fresh.conversation_id,
        fresh.key_id,
        fresh.message_id,
        fresh.base_id,
        fresh.document_id,
        fresh.memory_id,
    } - {""}
    return fresh


def test_matrix_covers_every_endpoint(app_and_runtime: tuple[Any, Runtime]) -> None:
    """Every operation of the OpenAPI document has a row, and every row is an operation."""
    app, _ = app_and_runtime
    documented = {
        (method.upper(), path)
        for path, operations in app.openapi()["paths"].items()
        for method in operations
    }
    assert documented == {(row.method, row.route) for row in ROWS}


async def test_authorization_matrix(client: httpx.AsyncClient, runtime: Runtime) -> None:
    world = await _world(client)
    world.runtime = runtime
    audit_before = len(await audit_rows(runtime, "conversation.audit_read"))
    wrong: list[str] = []
    cells = 0
    run: Callable[..., Awaitable[httpx.Response]] = client.request
    for row in ROWS:
        for principal, expected in zip(PRINCIPALS, row.expect, strict=True):
            fresh = await _fresh(client, world, row.fresh)
            method, url, kwargs = row.request(world, fresh)
            r = await run(method, url, headers=world.headers[principal], **kwargs)
            cells += 1
            label = f"{method} {row.route} as {principal}"
            if r.status_code != expected:
                wrong.append(f"{label}: expected {expected}, got {r.status_code} {r.text[:200]}")
                continue
            if principal in OUTSIDERS and row.check_leaks:
                sent = url + repr(kwargs) + repr(world.headers[principal])
                leaked = sorted(s for s in world.secrets if s in r.text and s not in sent)
                if leaked:
                    wrong.append(f"{label}: response carries the owner's data {leaked}")
    assert not wrong, f"{len(wrong)} of {cells} cells wrong:\n" + "\n".join(wrong)
    assert cells == len(ROWS) * len(PRINCIPALS)
    # the admin read the owner's conversation and its messages once each: two audit rows
    rows = await audit_rows(runtime, "conversation.audit_read")
    assert len(rows) - audit_before == 2
