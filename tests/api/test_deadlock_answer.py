"""A request whose transaction PostgreSQL aborted as a deadlock's victim is answered as a
conflict to retry (409), not as an outage (503 "the database is unavailable"): nothing was
written, and the database is up. The deadlock is a real one, between two connections."""

from __future__ import annotations

import asyncio
import os
import uuid

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from employeevirtual.api.errors import install_error_handlers

POSTGRES_URL = os.environ.get("EV_TEST_POSTGRES_URL")
pytestmark = pytest.mark.skipif(not POSTGRES_URL, reason="PostgreSQL only (EV_TEST_POSTGRES_URL)")


async def _a_deadlock_victims_error() -> DBAPIError:
    assert POSTGRES_URL is not None
    engine = create_async_engine(POSTGRES_URL)
    table = f"public.ev_deadlock_{uuid.uuid4().hex[:12]}"
    try:
        async with engine.connect() as a, engine.connect() as b:
            await a.execute(text(f"CREATE TABLE {table} (id int PRIMARY KEY)"))
            await a.execute(text(f"INSERT INTO {table} VALUES (1), (2)"))
            await a.commit()
            for conn in (a, b):
                await conn.execute(text("SET deadlock_timeout = '50ms'"))

            async def lock(conn: AsyncConnection, first: int, second: int) -> None:
                statement = text(f"SELECT id FROM {table} WHERE id = :id FOR UPDATE")
                await conn.execute(statement, {"id": first})
                await asyncio.sleep(0.2)  # both hold their first row before either asks more
                await conn.execute(statement, {"id": second})

            results = await asyncio.gather(lock(a, 1, 2), lock(b, 2, 1), return_exceptions=True)
            for conn in (a, b):
                await conn.rollback()
            await a.execute(text(f"DROP TABLE {table}"))
            await a.commit()
    finally:
        await engine.dispose()
    errors = [r for r in results if isinstance(r, BaseException)]
    assert len(errors) == 1 and isinstance(errors[0], DBAPIError), results
    assert "deadlock" in str(errors[0])
    return errors[0]


async def test_a_deadlock_victim_is_a_conflict_to_retry() -> None:
    victim = await _a_deadlock_victims_error()
    app = FastAPI()
    install_error_handlers(app)

    @app.post("/write")
    async def write() -> None:
        raise victim

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        r = await client.post("/write")
    assert r.status_code == 409, r.text
    assert "nothing was written, retry" in r.json()["detail"]
