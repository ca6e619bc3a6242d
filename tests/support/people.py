"""A person with data in every store, and the checks an erasure test makes."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from employeevirtual.runtime import Runtime
from employeevirtual.security.login_throttle import account_prefix
from employeevirtual.stores.mongo.documents import DocumentStore
from employeevirtual.stores.records import UserRecord
from support.api import PASSWORD, create_agent
from support.knowledge import create_base, upload
from support.knowledge import wait_done as wait_document
from support.leftovers import scan_mongo, scan_redis, scan_sql


async def register(client: httpx.AsyncClient, name: str) -> tuple[str, str, dict[str, str]]:
    email = f"{uuid.uuid4().hex[:10]}@people.example.com"
    r = await client.post(
        "/api/auth/register", json={"email": email, "password": PASSWORD, "name": name}
    )
    assert r.status_code == 201, r.text
    r = await client.post("/api/auth/login", data={"username": email, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return "", email, {"Authorization": f"Bearer {r.json()['access_token']}"}


async def wait_done(
    client: httpx.AsyncClient, admin: dict[str, str], job_id: str
) -> dict[str, Any]:
    for _ in range(300):
        r = await client.get(f"/api/admin/erasures/{job_id}", headers=admin)
        assert r.status_code == 200, r.text
        if r.json()["status"] == "done":
            return dict(r.json())
        await asyncio.sleep(0.1)
    raise AssertionError(f"erasure {job_id} did not finish: {r.json()}")


async def erase(runtime: Runtime, person: UserRecord) -> None:
    """``person`` erases their account (as ``DELETE /api/users/me``) and the job runs to its
    end, here or in the server's erasure worker."""
    job = await runtime.erasure.request_self(
        person, password=PASSWORD, shared_agents="delete", client_ip=None
    )
    async with asyncio.timeout(30):
        while (await runtime.erasure.get(job.id)).status != "done":
            await runtime.erasure.run_pending()
            await asyncio.sleep(0.05)


async def a_person_with_everything(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> dict[str, Any]:
    """A person with data in every store; returns what must vanish and a few handles."""
    marker = f"qz{uuid.uuid4().hex[:12]}"
    name = f"Zephyrine Quaxley{marker[-4:]}"
    _, email, headers = await register(client, name)
    me = (await client.get("/api/users/me", headers=headers)).json()
    uid = me["id"]
    private = await create_agent(client, headers, name="Diário", instructions="Be brief.")
    shared = await create_agent(
        client, headers, name="Shared helper", instructions="Answer kindly.", visibility="shared"
    )
    said = [
        f"meu segredo {marker} número um",
        f"second secret {marker} about my health",
        f"terceira mensagem {marker} com idempotência",
    ]
    r = await client.post(
        "/api/chat/agent", json={"message": said[0], "agent_id": private["id"]}, headers=headers
    )
    assert r.status_code == 200, r.text
    conversation = r.json()["conversation_id"]
    r = await client.post(
        "/api/chat/agent",
        json={"message": said[1], "conversation_id": conversation},
        headers=headers,
    )
    assert r.status_code == 200, r.text
    r = await client.post(
        "/api/chat/agent",
        json={"message": said[2], "agent_id": shared["id"]},
        headers={**headers, "Idempotency-Key": f"key-{marker}"},
    )
    assert r.status_code == 200, r.text
    # a streamed turn: its events sit in the live-turn log (a Redis stream with EV_REDIS_URL)
    r = await client.post(
        "/api/chat/agent",
        json={"message": f"streamed {said[1]}", "conversation_id": conversation},
        headers={**headers, "Accept": "text/event-stream"},
    )
    assert r.status_code == 200 and "event: done" in r.text, r.text
    r = await client.patch(
        f"/api/conversations/{conversation}", json={"title": f"Diário {marker}"}, headers=headers
    )
    assert r.status_code == 200
    r = await client.delete(
        f"/api/conversations/{r.json()['id']}", headers=headers
    )  # a deleted conversation's audit row keeps its title: the erasure must scrub it
    assert r.status_code == 204
    r = await client.post(
        "/api/chat/agent", json={"message": said[0], "agent_id": private["id"]}, headers=headers
    )
    kept = r.json()["conversation_id"]
    # memory: the offline model keeps what it is asked to remember (a memory, then its copy)
    r = await client.post(
        "/api/chat/agent",
        json={"message": f"remember that {said[1]}", "conversation_id": kept},
        headers=headers,
    )
    assert r.status_code == 200 and r.json()["agent_message"]["metadata"]["tool_calls"], r.text
    # knowledge: a base and a document holding their words (rows, chunks, vectors, the file)
    base = await create_base(client, headers, name=f"Notas {marker}")
    doc = await upload(
        client, headers, base["id"], "notes.txt", f"minhas notas {marker} {said[1]}".encode()
    )
    assert (await wait_document(client, headers, base["id"], doc["id"]))["status"] == "ready"
    # feedback on an agent's answer, with a comment
    r = await client.get(f"/api/conversations/{kept}/messages", headers=headers)
    answer = next(m["id"] for m in r.json()["messages"] if m["message_type"] == "agent")
    r = await client.post(
        f"/api/conversations/{kept}/messages/{answer}/feedback",
        json={"rating": "down", "comment": f"not what I meant {marker}"},
        headers=headers,
    )
    assert r.status_code == 200, r.text
    # a budget on them
    r = await client.post(
        "/api/admin/budgets",
        json={"scope": "user", "scope_id": uid, "max_tokens": 10**6},
        headers=admin,
    )
    assert r.status_code == 201, r.text
    r = await client.post("/api/api-keys", json={"name": f"key {marker}"}, headers=headers)
    assert r.status_code == 201
    key = r.json()["key"]
    assert (await client.get("/api/agents", headers={"X-API-Key": key})).status_code == 200
    # admins act on them: every such action is an audit row naming them
    r = await client.patch(f"/api/admin/users/{uid}", json={"is_active": True}, headers=admin)
    assert r.status_code == 200
    assert (await client.get(f"/api/conversations/{kept}", headers=admin)).status_code == 200
    r = await client.get("/api/search", params={"q": marker, "user_id": uid}, headers=admin)
    assert r.status_code == 200 and r.json()["items"]
    # a failed login (audit row, throttle key)
    r = await client.post("/api/auth/login", data={"username": email, "password": "wrong-pass"})
    assert r.status_code == 401
    return {
        "uid": uid,
        "email": email,
        "name": name,
        "marker": marker,
        "headers": headers,
        "shared_agent": shared["id"],
        "private_agent": private["id"],
        "key": key,
        "base": base["id"],
        "needles": {
            "id": uid,
            "id_hex": uuid.UUID(uid).hex,
            "email": email,
            "name": name,
            "marker": marker,
            # the failed-login counters' keys hold the email's hash, not the email
            "login_key": account_prefix(email).split(":")[2],
            **{f"message{i}": text for i, text in enumerate(said)},
        },
    }


async def scan_everything(
    engine: AsyncEngine,
    documents: DocumentStore,
    needles: dict[str, str],
    *,
    schema: str,
    redis_url: str | None = None,
    redis_prefixes: tuple[str, ...] = (),
) -> dict[str, Any]:
    found: dict[str, Any] = {
        "sql": await scan_sql(engine, schema if engine.dialect.name != "sqlite" else None, needles),
        "mongo": await scan_mongo(documents, needles),
    }
    if redis_url:
        found["redis"] = await scan_redis(redis_url, list(redis_prefixes), needles)
    return found


def scan_files(
    root: Path, needles: dict[str, str], *, skip: tuple[str, ...] = ()
) -> dict[str, list[str]]:
    """Every file under ``root`` (knowledge files and index, exports, …) as raw bytes."""
    found: dict[str, list[str]] = {}
    for path in root.rglob("*"):
        if not path.is_file() or any(part in str(path) for part in skip):
            continue
        data = path.read_bytes().lower()
        for label, needle in needles.items():
            if needle.lower().encode() in data:
                found.setdefault(label, []).append(str(path.relative_to(root)))
    return found
