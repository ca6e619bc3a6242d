"""Memories and summaries are the person's data: in their export, and gone with their erasure
(the leftover scan of every store is in tests/people/test_erasure.py)."""

from __future__ import annotations

import asyncio
import io
import json
import zipfile
from typing import Any
from uuid import UUID

import httpx
import pytest
from sqlalchemy import select

from employeevirtual.runtime import Runtime
from employeevirtual.settings import Settings
from employeevirtual.stores.sql import tables
from support.access import account
from support.api import PASSWORD, create_agent


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "agent_context_messages": 2,
            "memory_summary_every": 1,
            "memory_summary_model": "offline",
            "erasure_interval_seconds": 0.2,
        }
    )


def _jsonl(z: zipfile.ZipFile, name: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in z.read(f"{name}.jsonl").decode().splitlines()]


async def _wait(client: httpx.AsyncClient, url: str, headers: dict[str, str], done: str) -> Any:
    for _ in range(300):
        r = await client.get(url, headers=headers)
        assert r.status_code == 200, r.text
        if r.json()["status"] == done:
            return r.json()
        await asyncio.sleep(0.1)
    raise AssertionError(f"{url} never became {done}: {r.json()}")


async def test_export_holds_memories_and_summaries_and_erasure_removes_them(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    admin = await account(client, name="Admin")
    person = await account(client, name="Mia")
    agent = await create_agent(client, person.headers)  # the offline model
    r = await client.post(
        "/api/chat/agent",
        json={"message": "remember that I am allergic to peanuts", "agent_id": agent["id"]},
        headers=person.headers,
    )
    assert r.status_code == 200, r.text
    cid = r.json()["conversation_id"]
    for text in ("My favourite city is Lisbon.", "I work nights on Fridays."):
        r = await client.post(
            "/api/chat/agent",
            json={"message": text, "conversation_id": cid},
            headers=person.headers,
        )
        assert r.status_code == 200, r.text
    assert runtime.memory is not None
    await runtime.memory.worker.drain()

    r = await client.post("/api/users/me/export", headers=person.headers)
    assert r.status_code == 202, r.text
    status = await _wait(client, f"/api/exports/{r.json()['id']}", person.headers, "ready")
    r = await client.get(status["download_url"], headers=person.headers)
    z = zipfile.ZipFile(io.BytesIO(r.content))
    manifest = json.loads(z.read("manifest.json"))
    (memory,) = _jsonl(z, "memories")
    assert memory["content"] == "I am allergic to peanuts"
    assert memory["source_conversation_id"] == cid and memory["source_message_id"]
    summaries = _jsonl(z, "conversation_summaries")
    assert summaries and all(s["conversation_id"] == cid for s in summaries)
    assert "allergic to peanuts" in summaries[-1]["content"]
    assert manifest["counts"]["memories"] == 1
    assert manifest["counts"]["conversation_summaries"] == len(summaries)

    r = await client.request(
        "DELETE", "/api/users/me", json={"password": PASSWORD}, headers=person.headers
    )
    assert r.status_code == 202, r.text
    await _wait(client, f"/api/admin/erasures/{r.json()['id']}", admin.headers, "done")
    uid = UUID(person.id)
    async with runtime.engine.connect() as conn:
        for table in (tables.memories, tables.conversation_summaries):
            rows = (await conn.execute(select(table).where(table.c.user_id == uid))).all()
            assert rows == [], table.name
    copies = runtime.documents.db["user_memories"]
    assert await copies.count_documents({"user_id": person.id}) == 0
