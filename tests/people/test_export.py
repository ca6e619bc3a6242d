"""Export: the ZIP's JSON Lines round-trip to the stores' records; one Markdown file per
conversation; a manifest with the schema version; rate-limited; owner-scoped; admin audited."""

from __future__ import annotations

import asyncio
import io
import json
import zipfile
from datetime import datetime
from typing import Any
from uuid import UUID

import httpx
from pydantic_core import to_json
from sqlalchemy import select

from employeevirtual.runtime import Runtime
from employeevirtual.stores.sql import tables
from support.access import account, audit_rows
from support.api import create_agent
from support.knowledge import create_base, upload, wait_done


def _jsonl(z: zipfile.ZipFile, name: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in z.read(f"{name}.jsonl").decode().splitlines()]


def _same(row: dict[str, Any]) -> dict[str, Any]:
    """A store row as the export writes it (the comparison's other side)."""
    return dict(json.loads(to_json(row)))


async def _ready(
    client: httpx.AsyncClient, runtime: Runtime, headers: dict[str, str], job: str
) -> dict[str, Any]:
    """The background worker builds it (woken by the request)."""
    for _ in range(300):
        r = await client.get(f"/api/exports/{job}", headers=headers)
        assert r.status_code == 200, r.text
        if r.json()["status"] not in ("pending", "running"):
            break
        await asyncio.sleep(0.1)
    assert r.json()["status"] == "ready", r.json()
    return dict(r.json())


async def test_zip_round_trips_to_the_same_records(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    await account(client, name="Admin")
    owner = await account(client, name="Olga")
    other = await account(client, name="Otto")
    agent = await create_agent(client, owner.headers, instructions="Responda em português.")
    conversations = []
    for opening in ("Olá, preciso de ajuda com férias", "Second topic: quarterly report"):
        r = await client.post(
            "/api/chat/agent",
            json={"message": opening, "agent_id": agent["id"]},
            headers=owner.headers,
        )
        conversations.append(r.json()["conversation_id"])
        r = await client.post(
            "/api/chat/agent",
            json={
                "message": "e mais uma coisa\nem duas linhas",
                "conversation_id": conversations[-1],
            },
            headers=owner.headers,
        )
        assert r.status_code == 200
    assert (
        await client.post("/api/api-keys", json={"name": "ci"}, headers=owner.headers)
    ).status_code == 201
    base = await create_base(client, owner.headers, name="Manual de férias")
    # knowledge originals, byte for byte; a file name that tries to climb out of its folder
    originals = {
        "férias 2026.txt": "Férias: 30 dias por ano.\n".encode(),
        "..\\..\\win:evil?.md": b"# not a path\n\x00\xff binary tail",
    }
    documents = []
    for filename, data in originals.items():
        documents.append(await upload(client, owner.headers, base["id"], filename, data))
    for document in documents:
        await wait_done(client, owner.headers, base["id"], document["id"])
    # someone else's data must not appear
    other_agent = await create_agent(client, other.headers)
    await client.post(
        "/api/chat/agent",
        json={"message": "not olga's", "agent_id": other_agent["id"]},
        headers=other.headers,
    )
    await runtime.acks.flush()  # the runs' chat_analytics documents are batched

    r = await client.post("/api/users/me/export", headers=owner.headers)
    assert r.status_code == 202, r.text
    job = r.json()["id"]
    assert r.json()["status"] == "pending"
    # rate-limited
    r = await client.post("/api/users/me/export", headers=owner.headers)
    assert r.status_code == 429 and int(r.headers["Retry-After"]) > 0
    # someone else cannot see it
    assert (await client.get(f"/api/exports/{job}", headers=other.headers)).status_code == 404
    assert (
        await client.get(f"/api/exports/{job}/download", headers=other.headers)
    ).status_code == 404

    status = await _ready(client, runtime, owner.headers, job)
    assert (await client.get("/api/users/me/export", headers=owner.headers)).json()["id"] == job
    r = await client.get(status["download_url"], headers=owner.headers)
    assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
    assert len(r.content) == status["size_bytes"]
    z = zipfile.ZipFile(io.BytesIO(r.content))

    manifest = json.loads(z.read("manifest.json"))
    assert manifest["schema_version"] == 1 and manifest["user_id"] == owner.id

    uid = UUID(owner.id)
    async with runtime.engine.connect() as conn:
        sql: dict[str, list[dict[str, Any]]] = {}
        for name, table, where in (
            ("agents", tables.agents, tables.agents.c.user_id == uid),
            ("conversations", tables.conversations, tables.conversations.c.user_id == uid),
            ("messages", tables.messages, tables.messages.c.user_id == uid),
            ("api_keys", tables.api_keys, tables.api_keys.c.user_id == uid),
            ("knowledge_bases", tables.knowledge_bases, tables.knowledge_bases.c.user_id == uid),
            (
                "knowledge_documents",
                tables.knowledge_documents,
                tables.knowledge_documents.c.user_id == uid,
            ),
        ):
            sql[name] = [dict(r._mapping) for r in await conn.execute(select(table).where(where))]
        profile = dict(
            (await conn.execute(select(tables.users).where(tables.users.c.id == uid)))
            .one()
            ._mapping
        )

    for name, rows in sql.items():
        exported = [{k: v for k, v in d.items() if k != "original"} for d in _jsonl(z, name)]
        hidden = {"digest"}
        assert sorted(exported, key=lambda d: d["id"]) == sorted(
            (_same({k: v for k, v in row.items() if k not in hidden}) for row in rows),
            key=lambda d: d["id"],
        ), name
        assert manifest["counts"][name] == len(rows)
    assert len(sql["messages"]) == 8 and len(sql["conversations"]) == 2
    assert len(sql["knowledge_bases"]) == 1 and len(sql["knowledge_documents"]) == 2
    # every document's original, as uploaded, under the entry its row names
    entries = {d["id"]: d["original"] for d in _jsonl(z, "knowledge_documents")}
    for document, data in zip(documents, originals.values(), strict=True):
        entry = entries[document["id"]]
        assert entry.startswith(f"knowledge/{base['id']}/{document['id']}/"), entry
        assert ".." not in entry.split("/") and "\\" not in entry and ":" not in entry
        assert z.read(entry) == data
    assert entries[documents[0]["id"]].endswith("/férias 2026.txt")
    assert manifest["knowledge_files"]["count"] == 2
    assert manifest["knowledge_files"]["bytes"] == sum(len(d) for d in originals.values())
    # typed round trip: ids and times parse back to the stored values
    by_id = {row["id"]: row for row in sql["messages"]}
    for line in _jsonl(z, "messages"):
        stored = by_id[UUID(line["id"])]
        assert datetime.fromisoformat(line["created_at"]) == stored["created_at"]
        assert line["content"] == stored["content"] and line["seq"] == stored["seq"]
    (exported_profile,) = _jsonl(z, "profile")
    assert "password_hash" not in exported_profile
    assert exported_profile == _same({k: v for k, v in profile.items() if k != "password_hash"})
    assert all("digest" not in k for k in _jsonl(z, "api_keys"))

    # MongoDB sources: raw usage and activities, the same documents
    usage = await runtime.documents.analytics.find({"user_id": owner.id}).to_list(None)
    assert sorted(d["_id"] for d in _jsonl(z, "usage")) == sorted(d["_id"] for d in usage)
    assert len(usage) == 4
    activities = await runtime.documents.activities.find({"user_id": owner.id}).to_list(None)
    assert [d["_id"] for d in _jsonl(z, "user_activities")] == sorted(d["_id"] for d in activities)
    assert any(a["activity"] == "login" for a in _jsonl(z, "user_activities"))
    audit = _jsonl(z, "audit_log")
    assert {"user.register", "auth.login", "user.export"} <= {a["action"] for a in audit}

    # one Markdown file per conversation, every message in it
    for cid in conversations:
        text = z.read(f"conversations/{cid}.md").decode()
        for message in (m for m in sql["messages"] if str(m["conversation_id"]) == cid):
            assert message["content"] in text
    assert (
        "Olá, preciso de ajuda com férias"
        in z.read(f"conversations/{conversations[0]}.md").decode()
    )
    assert "not olga's" not in r.content.decode("latin-1")
    names = set(z.namelist())
    assert {f"conversations/{c}.md" for c in conversations} <= names


async def test_admin_export_is_audited_and_expiry_removes_the_file(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    admin = await account(client, name="Admin")
    owner = await account(client, name="Olga")
    r = await client.post(f"/api/admin/users/{owner.id}/export", headers=admin.headers)
    assert r.status_code == 202, r.text
    job = r.json()["id"]
    rows = await audit_rows(runtime, "user.export")
    assert [(str(r["actor_id"]), r["target_id"]) for r in rows][-1] == (admin.id, owner.id)
    await _ready(client, runtime, admin.headers, job)
    # the owner sees it too
    assert (await client.get(f"/api/exports/{job}", headers=owner.headers)).status_code == 200
    r = await client.get(f"/api/exports/{job}/download", headers=admin.headers)
    assert r.status_code == 200
    rows = await audit_rows(runtime, "user.export_download")
    assert rows[-1]["target_id"] == owner.id
    # past its time the ZIP is deleted and the export says so
    path = runtime.settings.export_dir / f"{job}.zip"
    assert path.exists()
    runtime.exports.clock = lambda: datetime.fromisoformat("2999-01-01T00:00:00+00:00")
    assert await runtime.exports.expire() == 1
    assert not path.exists()
    r = await client.get(f"/api/exports/{job}", headers=owner.headers)
    assert r.json()["status"] == "expired" and r.json()["download_url"] is None
    assert (
        await client.get(f"/api/exports/{job}/download", headers=owner.headers)
    ).status_code == 409
