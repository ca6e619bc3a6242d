"""``employeevirtual serve --workers N``: refused where processes cannot share the stores, and
with PostgreSQL + MongoDB + Redis, N processes whose shared state holds (limits through Redis,
the context cache validated by the conversation's count)."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from employeevirtual.stores.mongo.secantus import SecantusServer
from employeevirtual.stores.sql.engine import create_engine, read_connection
from support.api import create_agent, register_and_login
from support.cli import run_cli_here
from support.schema_copy import PostgresTemplate
from support.server_process import ServerProcess, free_port, server_env

POSTGRES_URL = os.environ.get("EV_TEST_POSTGRES_URL")
REDIS_URL = os.environ.get("EV_TEST_REDIS_URL")


def _no_exec(*args: object) -> None:
    raise AssertionError(f"serve went on to exec its supervisor: {args}")


async def test_several_workers_are_refused_on_sqlite(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the CLI's refusal, run in this process (a process start costs ~3-5 s); were it to go on,
    # the exec of uvicorn's supervisor fails the test instead of replacing pytest
    monkeypatch.setattr(os, "execv", _no_exec)
    code, out = await run_cli_here(
        "serve", "--workers", "2", env=server_env(tmp_path / "data", free_port())
    )
    assert code == 2, out
    assert "SQLite admits one writer" in out and "run one worker on SQLite" in out


@pytest.mark.skipif(not POSTGRES_URL, reason="needs EV_TEST_POSTGRES_URL")
async def test_several_workers_without_redis_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "execv", _no_exec)
    env = server_env(
        tmp_path / "data",
        free_port(),
        EV_DATABASE_URL=POSTGRES_URL,
        EV_MONGODB_URL="mongodb://127.0.0.1:1",
    )
    code, out = await run_cli_here("serve", "--workers", "2", env=env)
    assert code == 2, out
    assert "set EV_REDIS_URL, or run one worker" in out


@pytest.fixture
async def two_workers(
    tmp_path: Path, secantus: SecantusServer, postgres_template: PostgresTemplate | None
) -> AsyncIterator[tuple[ServerProcess, str]]:
    assert POSTGRES_URL is not None and REDIS_URL is not None
    run = uuid.uuid4().hex[:12]
    schema = f"t_{run}"
    if postgres_template is not None:  # the migrated schema's copy: serve finds it at head
        await postgres_template.clone(schema)
    server = ServerProcess(
        tmp_path / "data",
        tmp_path / "server.log",
        args=("--workers", "2"),
        EV_DATABASE_URL=POSTGRES_URL,
        EV_DATABASE_SCHEMA=schema,
        EV_MONGODB_URL=secantus.url,
        EV_MONGODB_DATABASE=f"ev_{run}",
        EV_REDIS_URL=REDIS_URL,
        EV_RATE_LIMIT_PREFIX=f"ev:test:{run}:",
        EV_RATE_LIMIT_CHAT=12,
        EV_DEFAULT_MODEL="offline",
    )
    try:
        await server.start(timeout=300)
        yield server, schema
    finally:
        await server.close()
        engine = create_engine(POSTGRES_URL)
        async with engine.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        await engine.dispose()


async def _live_instances(schema: str) -> set[int]:
    assert POSTGRES_URL is not None
    engine = create_engine(POSTGRES_URL, schema=schema)
    try:
        async with read_connection(engine) as conn:
            rows = await conn.execute(
                text(f'SELECT pid FROM "{schema}".server_instances WHERE stopped_at IS NULL')
            )
            return {int(r[0]) for r in rows}
    finally:
        await engine.dispose()


@pytest.mark.redis
@pytest.mark.skipif(not (POSTGRES_URL and REDIS_URL), reason="needs PostgreSQL and Redis")
async def test_two_workers_share_limits_and_keep_conversations_whole(
    two_workers: tuple[ServerProcess, str],
) -> None:
    server, schema = two_workers
    async with asyncio.timeout(120):
        while len(await _live_instances(schema)) < 2:  # noqa: ASYNC110 - rows in SQL
            await asyncio.sleep(0.2)
    async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as client:
        headers = await register_and_login(client)
        agent = await create_agent(client, headers)

    async def turn(body: dict[str, str]) -> httpx.Response:
        # a connection of its own each time: the kernel hands them to either worker
        async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as client:
            return await client.post("/api/chat/agent", json=body, headers=headers)

    r = await turn({"message": "hello", "agent_id": agent["id"]})
    assert r.status_code == 200, r.text
    cid = r.json()["conversation_id"]
    statuses = [
        (await turn({"message": f"m{i}", "conversation_id": cid})).status_code for i in range(19)
    ]
    # 12 turns a minute per user, counted in Redis by both workers together
    assert statuses.count(200) == 11 and statuses.count(429) == 8, statuses

    async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as client:
        r = await client.get(
            f"/api/conversations/{cid}/messages", params={"limit": 100}, headers=headers
        )
    assert r.status_code == 200, r.text
    messages = r.json()["messages"]
    # every acknowledged turn once, in order, whichever worker ran it
    assert [m["seq"] for m in messages] == list(range(1, 25))
    users = [m["content"] for m in messages if m["message_type"] == "user"]
    assert users == ["hello", *(f"m{i}" for i, s in enumerate(statuses) if s == 200)]

    # the supervisor SIGKILLed: its workers do not keep serving unsupervised, they stop too
    assert server.proc is not None
    await server.kill()
    async with asyncio.timeout(60):
        while _group_alive(server.proc.pid):  # noqa: ASYNC110 - processes, not a task
            await asyncio.sleep(0.2)
    with pytest.raises(httpx.ConnectError):
        async with httpx.AsyncClient(base_url=server.base_url, timeout=5) as client:
            await client.get("/health/live")


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)  # the group's id stays taken while any member lives
    except ProcessLookupError:
        return False
    return True
