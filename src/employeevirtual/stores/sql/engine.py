"""The async engine, with ``empl`` mapped away on SQLite and SQLite set up for concurrent use."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from employeevirtual.stores.sql.tables import SCHEMA

__all__ = ["create_engine", "schema_translate_map"]


def schema_translate_map(url: str, schema: str = SCHEMA) -> dict[str | None, str | None]:
    """SQLite has no schemas; elsewhere ``empl`` may be renamed (one schema per test run)."""
    if make_url(url).get_backend_name() == "sqlite":
        return {SCHEMA: None}
    return {} if schema == SCHEMA else {SCHEMA: schema}


def create_engine(
    url: str, *, echo: bool = False, schema: str = SCHEMA, **kwargs: Any
) -> AsyncEngine:
    backend = make_url(url).get_backend_name()
    options: dict[str, Any] = {"echo": echo, **kwargs}
    if backend == "sqlite":
        options.setdefault("connect_args", {"timeout": 30})
        if ":memory:" in url:
            options.setdefault("poolclass", NullPool)
    else:
        options.setdefault("pool_pre_ping", True)
        options.setdefault("pool_size", 20)
        options.setdefault("max_overflow", 20)
    engine = create_async_engine(url, **options).execution_options(
        schema_translate_map=schema_translate_map(url, schema)
    )
    if backend == "sqlite":
        _configure_sqlite(engine)
    return engine


def _configure_sqlite(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # WAL lets readers proceed during a write; the driver's own BEGIN handling is replaced by
        # an explicit BEGIN IMMEDIATE so two writers queue instead of failing to upgrade a lock.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")
