"""Scan every SQL table, every MongoDB collection and every Redis key (of a test's prefix)
for strings: what an erasure must leave nowhere."""

from __future__ import annotations

import json
from typing import Any

from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from employeevirtual.stores.mongo.documents import DocumentStore


def _as_text(value: Any) -> str:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("latin-1")
    return str(value)


async def sql_tables(engine: AsyncEngine, schema: str | None) -> list[str]:
    async with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            rows = await conn.execute(text("SELECT name FROM sqlite_master WHERE type = 'table'"))
        else:
            rows = await conn.execute(
                text("SELECT table_name FROM information_schema.tables WHERE table_schema = :s"),
                {"s": schema},
            )
        return sorted(r[0] for r in rows)


async def scan_sql(
    engine: AsyncEngine, schema: str | None, needles: dict[str, str]
) -> dict[str, list[str]]:
    """{needle label: [table, ...]} for every needle found in any column of any row."""
    found: dict[str, list[str]] = {}
    tables = await sql_tables(engine, schema)
    assert tables, "no tables to scan"
    async with engine.connect() as conn:
        for name in tables:
            qualified = f'"{name}"' if schema is None else f'"{schema}"."{name}"'
            for row in await conn.execute(text(f"SELECT * FROM {qualified}")):
                blob = " ".join(_as_text(v) for v in row)
                for label, needle in needles.items():
                    if needle.lower() in blob.lower():
                        found.setdefault(label, []).append(name)
    return found


async def scan_mongo(documents: DocumentStore, needles: dict[str, str]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    names = await documents.db.list_collection_names()
    for name in names:
        async for doc in documents.db[name].find({}):
            blob = json.dumps(doc, default=str, ensure_ascii=False)
            for label, needle in needles.items():
                if needle.lower() in blob.lower():
                    found.setdefault(label, []).append(name)
    return found


async def _redis_value(client: Redis, key: bytes) -> str:
    kind = (await client.type(key)).decode()
    if kind == "string":
        value: Any = await client.get(key)
    elif kind == "hash":
        value = await client.hgetall(key)
    elif kind == "stream":
        value = await client.xrange(key)
    elif kind == "list":
        value = await client.lrange(key, 0, -1)
    elif kind == "set":
        value = await client.smembers(key)
    elif kind == "zset":
        value = await client.zrange(key, 0, -1, withscores=True)
    else:
        value = await client.dump(key)
    return repr(value)


async def scan_redis(
    url: str, prefixes: list[str], needles: dict[str, str]
) -> dict[str, list[str]]:
    """Every key under the test's prefixes, name and value (by type), for each needle."""
    found: dict[str, list[str]] = {}
    client: Redis = Redis.from_url(url)
    try:
        for prefix in prefixes:
            async for key in client.scan_iter(match=f"{prefix}*"):
                name = key.decode()
                blob = name + " " + await _redis_value(client, key)
                for label, needle in needles.items():
                    # values come back as bytes reprs: compare against the escaped form too
                    escaped = repr(needle.encode())[2:-1]
                    if needle.lower() in blob.lower() or escaped.lower() in blob.lower():
                        found.setdefault(label, []).append(name)
    finally:
        await client.aclose()
    return found
