"""Registering MCP servers (admins only): the tools fetched and cached, secrets sealed at rest
and never returned, the outbound rules, stdio only for listed commands, who may use a server,
and agents choosing ``server/tool``."""

from __future__ import annotations

import json
from typing import Any

import httpx
import httpx2
import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select

from employeevirtual.mcp.network import GuardedTransport, NetworkPolicy
from employeevirtual.runtime import Runtime
from employeevirtual.settings import Settings
from employeevirtual.stores.sql.tables import mcp_servers
from support.access import Account, account, app_client, audit_rows
from support.server_process import free_port

SECRET = "s3cret-header-value-" + "q" * 20


async def register(
    client: httpx.AsyncClient, admin: Account, url: str, **body: Any
) -> httpx.Response:
    payload = {"name": "orders", "transport": "http", "url": url, **body}
    return await client.post("/api/admin/mcp-servers", json=payload, headers=admin.headers)


async def test_an_admin_registers_a_server_its_tools_are_cached_and_secrets_sealed(
    client: httpx.AsyncClient, runtime: Runtime, settings: Settings, mcp_server: tuple[str, int]
) -> None:
    admin = await account(client, name="Admin")
    r = await register(client, admin, mcp_server[0], headers={"X-Api-Key": SECRET})
    assert r.status_code == 201, r.text
    server = r.json()
    assert server["status"] == "available" and server["status_message"] is None
    names = [t["name"] for t in server["tools"]]
    assert "orders/lookup_order" in names and "orders/hang" in names
    assert server["secret_names"] == ["X-Api-Key"]
    for r in (
        await client.get("/api/admin/mcp-servers", headers=admin.headers),
        await client.get(f"/api/admin/mcp-servers/{server['id']}", headers=admin.headers),
        await client.post(f"/api/admin/mcp-servers/{server['id']}/refresh", headers=admin.headers),
    ):
        assert r.status_code == 200, r.text
        assert SECRET not in r.text
    # at rest: a Fernet token that only the configured key opens
    async with runtime.engine.connect() as conn:
        row = (await conn.execute(select(mcp_servers))).one()._mapping
    assert SECRET not in json.dumps({k: str(v) for k, v in row.items()})
    assert settings.secrets_key is not None
    opened = Fernet(settings.secrets_key.get_secret_value()).decrypt(row["secrets"].encode())
    assert json.loads(opened) == {"X-Api-Key": SECRET}
    (audit,) = await audit_rows(runtime, "mcp_server.create")
    assert audit["details"]["secret_names"] == ["X-Api-Key"]
    assert SECRET not in json.dumps(audit["details"])
    # the same name twice is a conflict
    assert (await register(client, admin, mcp_server[0])).status_code == 409


async def test_non_admins_cannot_register_or_read_servers(
    client: httpx.AsyncClient, mcp_server: tuple[str, int]
) -> None:
    await account(client, name="Admin")
    user = await account(client, name="Bea")
    assert (await register(client, user, mcp_server[0])).status_code == 403
    r = await client.get("/api/admin/mcp-servers", headers=user.headers)
    assert r.status_code == 403


async def test_urls_outside_the_allowlist_and_private_addresses_are_refused(
    settings: Settings, mcp_server: tuple[str, int]
) -> None:
    port = mcp_server[1]
    async with app_client(settings) as (client, _):
        admin = await account(client, name="Admin")
        for url, says in [
            (f"http://127.0.0.1:{port + 1}/mcp", "not in EV_MCP_ALLOWED_HOSTS"),
            (f"http://localhost:{port}/mcp", "not in EV_MCP_ALLOWED_HOSTS"),
            (f"http://169.254.169.254:{port}/mcp", "not in EV_MCP_ALLOWED_HOSTS"),
            ("file:///etc/passwd", "must be http or https"),
            (f"http://user:pw@127.0.0.1:{port}/mcp", "credentials in the URL"),
        ]:
            r = await register(client, admin, url)
            assert r.status_code == 422, (url, r.text)
            assert says in r.text, (url, r.text)
    # allowed by host and port, but loopback while private addresses are not allowed
    async with app_client(settings, mcp_allow_private=False) as (c2, _):
        r = await register(c2, admin, mcp_server[0])
        assert r.status_code == 422 and "EV_MCP_ALLOW_PRIVATE" in r.text, r.text
    # no allowlist at all: no HTTP server
    async with app_client(settings, mcp_allowed_hosts=[]) as (c3, _):
        r = await register(c3, admin, mcp_server[0])
        assert r.status_code == 422 and "EV_MCP_ALLOWED_HOSTS" in r.text, r.text


async def test_a_redirect_off_the_allowlist_is_refused(
    client: httpx.AsyncClient, mcp_server: tuple[str, int]
) -> None:
    """``/moved/mcp`` answers 307 to ``localhost``: not on the allowlist, so never followed."""
    admin = await account(client, name="Admin")
    url = mcp_server[0].replace("/mcp", "/moved/mcp")
    r = await register(client, admin, url)
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "unavailable" and r.json()["tools"] == []
    # the MCP client does not follow it; were it to, the transport refuses the new URL
    message = r.json()["status_message"]
    assert "not followed" in message or "not in EV_MCP_ALLOWED_HOSTS" in message, message
    policy = NetworkPolicy.of([f"127.0.0.1:{mcp_server[1]}"], allow_private=True)
    async with httpx2.AsyncClient(
        transport=GuardedTransport(policy), follow_redirects=True
    ) as http:
        with pytest.raises(httpx2.ConnectError, match="not in EV_MCP_ALLOWED_HOSTS"):
            await http.get(url)


async def test_only_listed_stdio_commands_may_be_registered(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    admin = await account(client, name="Admin")
    body: dict[str, Any] = {"name": "shell", "transport": "stdio"}
    for command in (["/bin/sh", "-c", "id"], ["python3", "-m", "http.server"]):
        r = await client.post(
            "/api/admin/mcp-servers", json={**body, "command": command}, headers=admin.headers
        )
        assert r.status_code == 422 and "EV_MCP_STDIO_COMMANDS" in r.text, r.text
    # a stdio server takes a command, an http one a url
    r = await client.post(
        "/api/admin/mcp-servers", json={**body, "url": "http://x/mcp"}, headers=admin.headers
    )
    assert r.status_code == 422
    async with runtime.engine.connect() as conn:
        assert (await conn.execute(select(mcp_servers))).first() is None


async def test_without_a_secrets_key_secrets_are_refused_but_plain_servers_work(
    settings: Settings, mcp_server: tuple[str, int]
) -> None:
    async with app_client(settings, secrets_key=None) as (c, _):
        admin = await account(c, name="Admin")
        r = await register(c, admin, mcp_server[0], headers={"X-Api-Key": SECRET})
        assert r.status_code == 409 and "EV_SECRETS_KEY" in r.text, r.text
        assert SECRET not in r.text
        r = await register(c, admin, mcp_server[0])
        assert r.status_code == 201 and r.json()["status"] == "available", r.text


async def test_a_down_server_is_unavailable_and_agents_not_using_it_still_answer(
    settings: Settings,
) -> None:
    dead = free_port()  # nothing listens there
    async with app_client(settings, mcp_allowed_hosts=[f"127.0.0.1:{dead}"]) as (c, _):
        admin = await account(c, name="Admin")
        r = await register(c, admin, f"http://127.0.0.1:{dead}/mcp")
        assert r.status_code == 201, r.text
        server = r.json()
        assert server["status"] == "unavailable" and server["tools"] == []
        assert server["status_message"].startswith("cannot connect")
        r = await c.post(f"/api/admin/mcp-servers/{server['id']}/refresh", headers=admin.headers)
        assert r.json()["status"] == "unavailable"
        agent = await c.post(
            "/api/agents", json={"name": "Plain", "tools": ["calculator"]}, headers=admin.headers
        )
        assert agent.status_code == 201, agent.text
        r = await c.post(
            "/api/chat/agent",
            json={"message": "hello", "agent_id": agent.json()["id"]},
            headers=admin.headers,
        )
        assert r.status_code == 200, r.text


async def test_agents_pick_server_tools_owners_see_only_their_servers(
    client: httpx.AsyncClient, mcp_server: tuple[str, int]
) -> None:
    admin = await account(client, name="Admin")
    ana = await account(client, name="Ana")
    bea = await account(client, name="Bea")
    r = await register(client, admin, mcp_server[0], available_to=[ana.id])
    assert r.status_code == 201, r.text
    r = await register(client, admin, mcp_server[0], name="public")
    assert r.status_code == 201, r.text
    # Ana sees both servers and their tools; Bea only the public one
    seen = await client.get("/api/mcp-servers", headers=ana.headers)
    assert sorted(s["name"] for s in seen.json()["items"]) == ["orders", "public"]
    assert all(s["url"] is None and s["secret_names"] == [] for s in seen.json()["items"])
    seen = await client.get("/api/mcp-servers", headers=bea.headers)
    assert [s["name"] for s in seen.json()["items"]] == ["public"]
    tools = await client.get("/api/tools", headers=bea.headers)
    names = [t["name"] for t in tools.json()]
    assert "calculator" in names and "public/lookup_order" in names
    assert "orders/lookup_order" not in names
    # an agent names them next to the built-ins
    r = await client.post(
        "/api/agents",
        json={"name": "Clerk", "tools": ["calculator", "orders/lookup_order"]},
        headers=ana.headers,
    )
    assert r.status_code == 201 and r.json()["tools"] == ["calculator", "orders/lookup_order"]
    # a server not offered to Bea is an unknown tool, and the 422 lists the valid ones
    r = await client.post(
        "/api/agents", json={"name": "Clerk", "tools": ["orders/lookup_order"]}, headers=bea.headers
    )
    assert r.status_code == 422, r.text
    message = r.json().get("detail", r.text)
    assert "orders/lookup_order" in str(message) and "public/lookup_order" in str(message)
    assert "calculator" in str(message)
    assert str(message).count("orders/") == 1  # only as the refused name
    r = await client.post(
        "/api/agents", json={"name": "Clerk", "tools": ["public/nope"]}, headers=bea.headers
    )
    assert r.status_code == 422 and "public/nope" in r.text


async def test_change_and_delete_a_server(
    client: httpx.AsyncClient, runtime: Runtime, mcp_server: tuple[str, int]
) -> None:
    admin = await account(client, name="Admin")
    ana = await account(client, name="Ana")
    server = (await register(client, admin, mcp_server[0], headers={"X-A": "1"})).json()
    path = f"/api/admin/mcp-servers/{server['id']}"
    r = await client.patch(
        path, json={"headers": {"X-B": SECRET}, "available_to": [ana.id]}, headers=admin.headers
    )
    assert r.status_code == 200, r.text
    assert r.json()["secret_names"] == ["X-B"] and r.json()["available_to"] == [ana.id]
    assert SECRET not in r.text
    r = await client.patch(path, json={"command": ["x"]}, headers=admin.headers)
    assert r.status_code == 422
    r = await client.patch(
        path, json={"available_to": [str(admin.id)[:-4] + "0000"]}, headers=admin.headers
    )
    assert r.status_code == 422 and "no such users" in r.text
    assert len(await audit_rows(runtime, "mcp_server.update")) == 1
    assert (await client.delete(path, headers=admin.headers)).status_code == 204
    assert (await client.get(path, headers=admin.headers)).status_code == 404
    assert len(await audit_rows(runtime, "mcp_server.delete")) == 1
