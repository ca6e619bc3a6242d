"""Helpers for the access-control tests: accounts with roles, API keys, and counting what
the stores hold so a test can prove a refused request wrote nothing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from sqlalchemy import func, select

from employeevirtual.main import create_app
from employeevirtual.runtime import Runtime
from employeevirtual.settings import Settings
from employeevirtual.stores.mongo.collections import Collections
from employeevirtual.stores.sql import tables
from support.api import Account, account

# ``account`` lives in support.api (the one account helper); re-exported for older imports
__all__ = [
    "MONGO_COLLECTIONS",
    "SQL_TABLES",
    "Account",
    "account",
    "api_key",
    "app_client",
    "audit_rows",
    "counts",
]
SQL_TABLES = ("users", "agents", "conversations", "messages", "api_keys", "audit_log")
MONGO_COLLECTIONS = (
    Collections.CHAT_CONVERSATIONS,
    Collections.CHAT_MESSAGES,
    Collections.CHAT_ANALYTICS,
    Collections.USER_ACTIVITIES,
)


@asynccontextmanager
async def app_client(
    settings: Settings, *, client_ip: str = "203.0.113.7", **overrides: Any
) -> AsyncIterator[tuple[httpx.AsyncClient, Runtime]]:
    """The real app on the test's stores, with some settings changed (e.g. tighter limits)."""
    app = create_app(settings.model_copy(update=overrides))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=(client_ip, 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield c, app.state.runtime


async def api_key(client: httpx.AsyncClient, owner: Account, name: str = "ci") -> dict[str, Any]:
    r = await client.post("/api/api-keys", json={"name": name}, headers=owner.headers)
    assert r.status_code == 201, r.text
    return dict(r.json())


async def counts(runtime: Runtime) -> dict[str, int]:
    """Rows per table and documents per collection: equal before/after = nothing written.
    Earlier turns' batched writes (their runs' analytics, their acks) are flushed first, so
    that they land in neither count's difference (again while a MongoDB blip, on a loaded
    machine, keeps some for the next flush)."""
    async with asyncio.timeout(30):
        await runtime.acks.flush()
        while runtime.acks.buffered:
            await asyncio.sleep(0.2)
            await runtime.acks.flush()
    result: dict[str, int] = {}
    async with runtime.engine.connect() as conn:
        for name in SQL_TABLES:
            table = tables.metadata.tables[f"{tables.SCHEMA}.{name}"]
            query = select(func.count()).select_from(table)
            result[name] = int((await conn.execute(query)).scalar_one())
    for name in MONGO_COLLECTIONS:
        result[name] = await runtime.documents.db[name].count_documents({})
    return result


async def audit_rows(runtime: Runtime, action: str) -> list[dict[str, Any]]:
    async with runtime.engine.connect() as conn:
        rows = await conn.execute(
            select(tables.audit_log).where(tables.audit_log.c.action == action)
        )
        return [dict(r._mapping) for r in rows]
