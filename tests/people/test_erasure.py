"""Erasure: after erasing a person who has everything (conversations, titles, analytics,
activities, API keys, idempotency keys, shared and private agents, admin audit rows about
them, limiter keys), a scan of every SQL table, every MongoDB collection and every Redis key
of the run finds none of their id, email, name or message content. Only the tombstone stays."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart
from pydantic_ai.models.function import AgentInfo, FunctionModel
from sqlalchemy import select

from employeevirtual.errors import Unauthorized
from employeevirtual.runtime import Runtime
from employeevirtual.security.ratelimit import InProcessRateLimiter
from employeevirtual.settings import Settings
from employeevirtual.stores.sql import tables
from support import factories
from support.access import account, app_client
from support.api import PASSWORD, create_agent
from support.people import (
    a_person_with_everything,
    erase,
    scan_everything,
    scan_files,
    wait_done,
)

REDIS_URL = os.environ.get("EV_TEST_REDIS_URL")
CACHES = ["memory", *(["redis"] if REDIS_URL else [])]


@pytest.fixture(params=CACHES)
async def people_app(
    request: pytest.FixtureRequest, settings: Settings
) -> AsyncIterator[tuple[httpx.AsyncClient, Runtime, Settings]]:
    # a 2-message window summarized at every turn: the person's conversations get summaries
    overrides: dict[str, Any] = {
        "erasure_interval_seconds": 0.2,
        "agent_context_messages": 2,
        "memory_summary_every": 1,
        "memory_summary_model": "offline",
    }
    if request.param == "redis":
        run = uuid.uuid4().hex
        overrides |= {
            "redis_url": REDIS_URL,
            "rate_limit_prefix": f"ev:t15:{run}:",
            "stream_key_prefix": f"ev:t15s:{run}:",
        }
    changed = settings.model_copy(update=overrides)
    async with app_client(changed) as (client, runtime):
        yield client, runtime, changed


def _in_process_keys(runtime: Runtime, needles: dict[str, str]) -> dict[str, list[str]]:
    """The in-process limiter's keys holding a needle (none to scan with Redis)."""
    if not isinstance(runtime.limiter, InProcessRateLimiter):
        return {}
    found: dict[str, list[str]] = {}
    for key in runtime.limiter.held_keys():
        for label, needle in needles.items():
            if needle.lower() in key.lower():
                found.setdefault(label, []).append(key)
    return found


async def test_erasure_leaves_nothing_but_the_tombstone(
    people_app: tuple[httpx.AsyncClient, Runtime, Settings],
) -> None:
    client, runtime, settings = people_app
    admin = await account(client, name="Admin")
    other = await account(client, name="Otto")
    person = await a_person_with_everything(client, admin.headers)
    # someone else talks to the person's shared agent: it must outlive them
    r = await client.post(
        "/api/chat/agent",
        json={"message": "hello shared", "agent_id": person["shared_agent"]},
        headers=other.headers,
    )
    assert r.status_code == 200
    others_conversation = r.json()["conversation_id"]

    # the analytics rollups hold them too (today's runs rolled up)
    await runtime.rollup_task.rollups.roll_day(datetime.now(UTC).date())

    # memory: summaries written, the memory's copy in MongoDB (the relay carries it)
    assert runtime.memory is not None
    await runtime.memory.worker.drain()
    await runtime.relay.run_once()

    # the scan works: before, it finds the person everywhere
    scan = {
        "schema": settings.database_schema,
        "redis_url": settings.redis_url,
        "redis_prefixes": (settings.rate_limit_prefix, settings.stream_key_prefix),
    }
    before = await scan_everything(runtime.engine, runtime.documents, person["needles"], **scan)
    assert {
        "id_hex" if runtime.engine.dialect.name == "sqlite" else "id",
        "email",
        "name",
        "marker",
    } <= set(before["sql"]), before["sql"]
    assert {"id", "marker", "message0"} <= set(before["mongo"]), before["mongo"]
    assert "analytics_daily" in before["mongo"]["id"], before["mongo"]
    assert {"memories", "conversation_summaries"} <= set(before["sql"]["marker"]), before["sql"]
    assert "user_memories" in before["mongo"]["marker"], before["mongo"]
    # on disk: the knowledge files and index (the SQLite file is scanned table by table)
    sqlite_files = ("employeevirtual.db", "secantus", "mongodb")
    assert "marker" in scan_files(settings.data_dir, person["needles"], skip=sqlite_files)
    if settings.redis_url:
        # the limiter's per-user key, the failed login's (account, address) counter and the
        # streamed turn's events (the message, the owner)
        assert {"id", "marker", "login_key"} <= set(before["redis"]), before["redis"]
    else:
        assert {"id", "login_key"} <= set(_in_process_keys(runtime, person["needles"]))

    # wrong password: refused, nothing changes
    r = await client.request(
        "DELETE", "/api/users/me", json={"password": "not-it-at-all"}, headers=person["headers"]
    )
    assert r.status_code == 422 and "password" in r.text
    r = await client.request(
        "DELETE", "/api/users/me", json={"password": PASSWORD}, headers=person["headers"]
    )
    assert r.status_code == 202, r.text
    job = r.json()
    # from the answer on, the account is locked out: password, token, API key
    r = await client.post(
        "/api/auth/login", data={"username": person["email"], "password": PASSWORD}
    )
    assert r.status_code == 401
    assert (await client.get("/api/users/me", headers=person["headers"])).status_code == 401
    assert (
        await client.get("/api/agents", headers={"X-API-Key": person["key"]})
    ).status_code == 401

    done = await wait_done(client, admin.headers, job["id"])
    assert done["completed_at"] is not None

    after = await scan_everything(runtime.engine, runtime.documents, person["needles"], **scan)
    assert after == {k: {} for k in after}, after
    assert _in_process_keys(runtime, person["needles"]) == {}
    assert scan_files(settings.data_dir, person["needles"], skip=sqlite_files) == {}

    # the tombstone: a random id, the times, who asked; nobody's id
    async with runtime.engine.connect() as conn:
        row = (
            (
                await conn.execute(
                    select(tables.erasure_jobs).where(
                        tables.erasure_jobs.c.id == uuid.UUID(job["id"])
                    )
                )
            )
            .one()
            ._mapping
        )
    assert row["user_id"] is None and row["requested_by"] == "self" and row["actor_id"] is None
    assert row["status"] == "done" and row["completed_at"] is not None

    # the shared agent went to the admin and still serves the other person's conversation
    r = await client.get(f"/api/agents/{person['shared_agent']}", headers=admin.headers)
    assert r.status_code == 200 and r.json()["user_id"] == admin.id
    r = await client.post(
        "/api/chat/agent",
        json={"message": "still there?", "conversation_id": others_conversation},
        headers=other.headers,
    )
    assert r.status_code == 200
    assert (
        await client.get(f"/api/agents/{person['private_agent']}", headers=admin.headers)
    ).status_code == 404
    # the email is free again
    r = await client.post(
        "/api/auth/register", json={"email": person["email"], "password": PASSWORD, "name": "New"}
    )
    assert r.status_code == 201


async def test_admin_erasure_deletes_shared_agents_on_request(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    admin = await account(client, name="Admin")
    person = await account(client, name="Pia")
    other = await account(client, name="Otto")
    shared = await create_agent(
        client, person.headers, visibility="shared", instructions="Pia's way"
    )
    r = await client.post(
        "/api/chat/agent", json={"message": "oi", "agent_id": shared["id"]}, headers=other.headers
    )
    assert r.status_code == 200
    r = await client.request(
        "DELETE",
        f"/api/admin/users/{person.id}",
        json={"shared_agents": "delete"},
        headers=admin.headers,
    )
    assert r.status_code == 202, r.text
    job = r.json()
    await runtime.erasure.run_pending()
    done = await wait_done(client, admin.headers, job["id"])
    assert done["status"] == "done"
    # deleted, but the other person's history keeps its foreign key: emptied and soft-deleted
    assert (
        await client.get(f"/api/agents/{shared['id']}", headers=admin.headers)
    ).status_code == 404
    async with runtime.engine.connect() as conn:
        agent = (
            (
                await conn.execute(
                    select(tables.agents).where(tables.agents.c.id == uuid.UUID(shared["id"]))
                )
            )
            .one()
            ._mapping
        )
    assert agent["instructions"] == "" and agent["deleted_at"] is not None
    assert str(agent["user_id"]) == admin.id
    # the tombstone names the admin who asked
    async with runtime.engine.connect() as conn:
        row = (
            (
                await conn.execute(
                    select(tables.erasure_jobs).where(
                        tables.erasure_jobs.c.id == uuid.UUID(job["id"])
                    )
                )
            )
            .one()
            ._mapping
        )
    assert row["requested_by"] == "admin" and str(row["actor_id"]) == admin.id
    assert row["user_id"] is None
    r = await client.get(
        "/api/admin/audit", params={"action": "user.erased"}, headers=admin.headers
    )
    assert r.status_code in (200, 404)


async def test_the_only_admin_cannot_erase_themselves(client: httpx.AsyncClient) -> None:
    admin = await account(client, name="Admin")
    r = await client.request(
        "DELETE", "/api/users/me", json={"password": PASSWORD}, headers=admin.headers
    )
    assert r.status_code == 409 and "admin" in r.text
    r = await client.request(
        "DELETE", f"/api/admin/users/{admin.id}", json={}, headers=admin.headers
    )
    assert r.status_code == 409


async def test_a_first_turn_committing_after_the_erasure_purge_is_refused(
    runtime: Runtime, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A conversation's first turn whose agent answers while its owner's erasure runs: checked
    before the deactivation, committing after the erasure purged the person's conversations.
    Its commit is refused (the owner no longer active), so no conversation row of theirs is
    left to refuse the account's deletion (a foreign key), and the job finishes."""
    await factories.user(runtime, name="Admin")
    otto = await factories.user(runtime, name="Otto")
    person = await factories.user(runtime, name="Pia")
    answering, answer = asyncio.Event(), asyncio.Event()

    async def slow(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        answering.set()
        await answer.wait()
        return ModelResponse(parts=[TextPart("an answer")])

    model = FunctionModel(slow, model_name="openai-chat:erasure-slow")
    runtime.models.override(model.model_name, model)
    shared = await factories.agent(runtime, otto, visibility="shared", model=model.model_name)
    secret = f"Pia's secret {uuid.uuid4().hex[:12]}"
    turn = asyncio.create_task(factories.turn(runtime, person, secret, agent=shared))
    await answering.wait()
    flush = runtime.erasure.flush_documents
    assert flush is not None

    async def after_the_purge() -> None:  # the erasure's documents step: the turn commits now
        answer.set()
        await asyncio.wait([turn])
        await flush()

    monkeypatch.setattr(runtime.erasure, "flush_documents", after_the_purge)
    await erase(runtime, person)
    with pytest.raises(Unauthorized):
        await turn
    await runtime.acks.flush()
    needles = {"id": str(person.id), "id_hex": person.id.hex, "message": secret}
    found = await scan_everything(
        runtime.engine, runtime.documents, needles, schema=settings.database_schema
    )
    assert found == {"sql": {}, "mongo": {}}, found
