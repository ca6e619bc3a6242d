"""Users, tokens, agents and health over HTTP."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx
import jwt
from pydantic import SecretStr
from sqlalchemy import select

from employeevirtual.main import create_app
from employeevirtual.runtime import Runtime
from employeevirtual.settings import Settings
from employeevirtual.stores.sql.tables import audit_log
from support.api import PASSWORD, create_agent, register_and_login


async def _audit_actions(runtime: Runtime, target: str) -> list[str]:
    async with runtime.engine.connect() as conn:
        query = (
            select(audit_log.c.action)
            .where(audit_log.c.target_id == target)
            .order_by(audit_log.c.created_at)
        )
        return list((await conn.execute(query)).scalars())


async def test_first_user_is_admin_and_login_is_audited(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    first = await register_and_login(client)
    second = await register_and_login(client)
    me1 = (await client.get("/api/users/me", headers=first)).json()
    me2 = (await client.get("/api/users/me", headers=second)).json()
    assert (me1["role"], me2["role"]) == ("admin", "user")
    assert "password" not in str(me1) and "hash" not in str(me1)
    assert await _audit_actions(runtime, me2["id"]) == ["user.register", "auth.login"]
    r = await client.post(
        "/api/auth/register", json={"email": me2["email"], "password": PASSWORD, "name": "X"}
    )
    assert r.status_code == 409 and "already exists" in r.text
    assert (await client.get("/api/auth/signup")).json() == {"allowed": True}  # no token needed


async def test_signup_can_be_closed(settings: Settings) -> None:
    app = create_app(settings.model_copy(update={"allow_signup": False}))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            r = await client.post(
                "/api/auth/register",
                json={"email": "a@example.com", "password": PASSWORD, "name": "A"},
            )
            assert r.status_code == 403 and "registration is closed" in r.text
            assert (await client.get("/api/auth/signup")).json() == {"allowed": False}
            # the CLI path still creates an admin
            await app.state.runtime.accounts.register(
                email="root@example.com", password=PASSWORD, name="Root", role="admin"
            )
            r = await client.post(
                "/api/auth/login", data={"username": "root@example.com", "password": PASSWORD}
            )
            assert r.status_code == 200


async def test_expired_and_foreign_tokens_are_401(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    headers = await register_and_login(client)
    me = (await client.get("/api/users/me", headers=headers)).json()
    now = datetime.now(UTC)
    claims = {
        "sub": me["id"],
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "iat": now - timedelta(hours=2),
        "exp": now - timedelta(hours=1),
    }
    expired = jwt.encode(claims, settings.signing_key, algorithm="HS256")
    r = await client.get("/api/users/me", headers={"Authorization": f"Bearer {expired}"})
    assert r.status_code == 401 and "expired" in r.text
    forged = jwt.encode(
        claims | {"exp": now + timedelta(hours=1)}, "another-key-" * 4, algorithm="HS256"
    )
    r = await client.get("/api/users/me", headers={"Authorization": f"Bearer {forged}"})
    assert r.status_code == 401 and "not valid" in r.text
    ghost = jwt.encode(
        claims | {"sub": str(uuid.uuid4()), "exp": now + timedelta(hours=1)},
        settings.signing_key,
        algorithm="HS256",
    )
    r = await client.get("/api/users/me", headers={"Authorization": f"Bearer {ghost}"})
    assert r.status_code == 401 and "no longer exists" in r.text


async def test_restart_keeps_users_and_tokens(settings: Settings) -> None:
    """The embedded default keeps its data and its generated key in the data directory."""
    keyless = settings.model_copy(update={"secret_key": None})
    app = create_app(keyless)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            headers = await register_and_login(client, email="keep@example.com")
    assert (settings.data_dir / "secret_key").exists()
    app = create_app(keyless.model_copy())
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            r = await client.get("/api/users/me", headers=headers)
            assert r.status_code == 200 and r.json()["email"] == "keep@example.com"


async def test_agent_lifecycle_is_audited(client: httpx.AsyncClient, runtime: Runtime) -> None:
    headers = await register_and_login(client)
    agent = await create_agent(client, headers, tools=["calculator"])
    assert agent["model"] == "offline" and agent["visibility"] == "private"
    aid = agent["id"]
    r = await client.patch(
        f"/api/agents/{aid}",
        json={"name": "Financeiro", "model_settings": {"temperature": 0.1}},
        headers=headers,
    )
    assert r.status_code == 200, r.text
    assert r.json()["name"] == "Financeiro" and r.json()["model_settings"] == {"temperature": 0.1}
    assert [a["id"] for a in (await client.get("/api/agents", headers=headers)).json()] == [aid]
    # a shared agent is usable by others but changed only by its owner
    await client.patch(f"/api/agents/{aid}", json={"visibility": "shared"}, headers=headers)
    other = await register_and_login(client)
    assert (await client.get(f"/api/agents/{aid}", headers=other)).status_code == 200
    r = await client.post(
        "/api/chat/agent", params={"message": "ola", "agent_id": aid}, headers=other
    )
    assert r.status_code == 200
    assert (
        await client.patch(f"/api/agents/{aid}", json={"name": "x"}, headers=other)
    ).status_code == 404
    cid = r.json()["conversation_id"]
    assert (await client.delete(f"/api/agents/{aid}", headers=headers)).status_code == 204
    assert (await client.get(f"/api/agents/{aid}", headers=headers)).status_code == 404
    r = await client.post(
        "/api/chat/agent", params={"message": "ola", "agent_id": aid}, headers=headers
    )
    assert r.status_code == 404
    # the other user's conversation with it stays readable but cannot continue
    r = await client.post(
        "/api/chat/agent", params={"message": "ola", "conversation_id": cid}, headers=other
    )
    assert r.status_code == 409 and "was deleted" in r.text
    r = await client.get(f"/api/conversations/{cid}/messages", headers=other)
    assert r.status_code == 200 and len(r.json()["messages"]) == 2
    assert await _audit_actions(runtime, aid) == [
        "agent.create",
        "agent.update",
        "agent.update",
        "agent.delete",
    ]


async def test_health(client: httpx.AsyncClient, settings: Settings) -> None:
    assert (await client.get("/health/live")).json() == {"status": "ok"}
    r = await client.get("/health/ready")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ok"
    assert body["checks"]["sql"]["status"] == body["checks"]["mongodb"]["status"] == "ok"
    assert body["checks"]["sql"]["latency_ms"] >= 0


async def test_ready_is_degraded_without_mongodb(settings: Settings) -> None:
    # nothing listens on port 9 of loopback
    app = create_app(
        settings.model_copy(
            update={"mongodb_url": SecretStr("mongodb://127.0.0.1:9/?directConnection=true")}
        )
    )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            r = await client.get("/health/ready")
            assert r.status_code == 200
            assert r.json()["status"] == "degraded"
            assert r.json()["checks"]["mongodb"]["status"] == "down"
            # and a turn still succeeds, its history served from SQL
            headers = await register_and_login(client)
            agent = await create_agent(client, headers)
            r = await client.post(
                "/api/chat/agent",
                params={"message": "ola", "agent_id": agent["id"]},
                headers=headers,
            )
            assert r.status_code == 200, r.text
            cid = r.json()["conversation_id"]
            r = await client.get(f"/api/conversations/{cid}/messages", headers=headers)
            assert r.json()["source"] == "sql" and len(r.json()["messages"]) == 2
