"""Ingestion survives a crash, and the engine is shared between processes: a separate worker
process (``employeevirtual knowledge worker``) dies mid-document (``os._exit``, like SIGKILL);
another one resumes at the recorded progress; the document ends ready with each chunk exactly
once; the API process, which ingested nothing itself, finds and cites it."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID

import httpx
import pytest

from employeevirtual.main import create_app
from employeevirtual.runtime import Runtime
from employeevirtual.settings import Settings
from support.api import create_agent, register_and_login
from support.knowledge import create_base, upload

CHUNK_TOKENS = 32


@pytest.fixture
async def api(settings: Settings) -> AsyncIterator[tuple[httpx.AsyncClient, Runtime, Settings]]:
    server_settings = settings.model_copy(
        update={
            "knowledge_ingest_in_server": False,
            "knowledge_chunk_tokens": CHUNK_TOKENS,
            "knowledge_chunk_overlap": 0,
        }
    )
    app = create_app(server_settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("203.0.113.11", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield c, app.state.runtime, server_settings


def _env(settings: Settings, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EV_")}
    env |= {
        "EV_DATA_DIR": str(settings.data_dir),
        "EV_DATABASE_URL": settings.sql_url,
        "EV_DATABASE_SCHEMA": settings.database_schema,
        "EV_SECRET_KEY": "unused-by-the-worker-0123456789abcdef",
        "EV_KNOWLEDGE_CHUNK_TOKENS": str(CHUNK_TOKENS),
        "EV_KNOWLEDGE_CHUNK_OVERLAP": "0",
        "EV_KNOWLEDGE_LEASE_SECONDS": "1",
        "EV_LOG_LEVEL": "INFO",
        **extra,
    }
    return env


async def _worker(settings: Settings, *args: str, **extra: str) -> tuple[int, str]:
    """Run the worker command to its end; its exit code and output. The output goes to a
    file: a worker that dies leaves its parser child to notice, and that child still holds
    the worker's stdout for a moment."""
    out = settings.data_dir / f"worker-{len(args)}-{len(extra)}.log"
    with open(out, "wb") as sink:  # noqa: ASYNC230 (a local file, opened once)
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "employeevirtual.cli",
            "knowledge",
            "worker",
            *args,
            env=_env(settings, **extra),
            stdout=sink,
            stderr=sink,
        )
        try:
            code = await asyncio.wait_for(process.wait(), 300)
        except TimeoutError:
            process.kill()
            raise
    return code, out.read_text(errors="replace")


def _handbook() -> bytes:
    sections = []
    for i in range(100):
        sections.append(
            f"## Section {i}\n\nRule {i}: requests of type {i} are answered by team {i % 7} "
            f"within {i + 1} working days, and escalated to the manager on duty after that."
        )
    sections.append("## Parking\n\nThe office car park has 12 spaces reserved for visitors.")
    return ("# Operations handbook\n\n" + "\n\n".join(sections)).encode()


async def _document(client: httpx.AsyncClient, headers: dict[str, str], base: str, doc: str) -> Any:
    r = await client.get(f"/api/knowledge-bases/{base}/documents/{doc}", headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


async def test_worker_crash_resumes_without_duplicates(
    api: tuple[httpx.AsyncClient, Runtime, Settings],
) -> None:
    client, runtime, settings = api
    headers = await register_and_login(client)
    base = await create_base(client, headers)
    doc = await upload(client, headers, base["id"], "handbook.md", _handbook())
    doc_id = UUID(doc["id"])

    code, log = await _worker(settings, "--once", EV_FAULT_KNOWLEDGE_EXIT_AFTER_BATCHES="1")
    crashed_at = time.monotonic()  # the dead worker's 1 s lease started before this
    assert code == 137, log
    crashed = await _document(client, headers, base["id"], doc["id"])
    assert crashed["status"] == "processing", crashed
    assert 0 < crashed["chunks_done"] < crashed["chunks_total"], crashed
    # written by the other process, visible here (one shared index), not yet citable
    index = runtime.knowledge.index
    assert await index.count(document_id=doc_id) == crashed["chunks_done"]
    r = await client.post(
        f"/api/knowledge-bases/{base['id']}/search",
        json={"query": "visitor parking spaces"},
        headers=headers,
    )
    assert r.json()["results"] == []

    # the dead worker's lease runs out (the checks above took part of it)
    await asyncio.sleep(max(0.0, crashed_at + 1.2 - time.monotonic()))
    code, log = await _worker(settings, "--once")
    assert code == 0, log
    assert f"resuming document {doc_id} at chunk {crashed['chunks_done']}" in log, log
    done = await _document(client, headers, base["id"], doc["id"])
    assert done["status"] == "ready", done
    assert done["chunks_done"] == done["chunks_total"] == crashed["chunks_total"]
    ids = await index.chunk_ids(doc_id)
    assert sorted(ids) == sorted(f"{doc_id}:{i}" for i in range(done["chunks_total"]))
    assert await index.count(document_id=doc_id) == done["chunks_total"]

    agent = await create_agent(client, headers, knowledge_base_ids=[base["id"]])
    r = await client.post(
        "/api/chat/agent",
        json={
            "message": "How many visitor spaces does the car park have?",
            "agent_id": agent["id"],
        },
        headers=headers,
    )
    assert r.status_code == 200, r.text
    assert r.json()["sources"][0]["document_id"] == doc["id"]
    assert "12 spaces" in r.json()["agent_message"]["content"]
