"""The stores a server opens first, in order, and closes again if any of them fails: the data
dir (writable, locked when a store is embedded: ``stores.datadir``), the relational store
(migrated), MongoDB (the embedded SecantusDB when no URL is given) and the retrieval engine."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from sqlalchemy.ext.asyncio import AsyncEngine

from employeevirtual.analytics import metrics
from employeevirtual.analytics.metrics import instrument_engine, observe_mongo
from employeevirtual.analytics.tracing import MongoSpans, enable_agent_tracing, trace_engine
from employeevirtual.knowledge.service import KnowledgeService
from employeevirtual.knowledge.setup import open_knowledge
from employeevirtual.security.data_dir import secure_data_dir
from employeevirtual.settings import Settings
from employeevirtual.stores.datadir import (
    DataDirLock,
    check_writable,
    sqlite_files,
    write_mongodb_url,
)
from employeevirtual.stores.mongo.breaker import CircuitBreaker
from employeevirtual.stores.mongo.client import connect
from employeevirtual.stores.mongo.collections import ensure_indexes
from employeevirtual.stores.mongo.documents import DocumentStore
from employeevirtual.stores.mongo.embedded import start_embedded
from employeevirtual.stores.mongo.secantus import SecantusServer
from employeevirtual.stores.sql.engine import create_engine
from employeevirtual.stores.sql.migrate import upgrade

__all__ = ["OpenStores", "open_stores"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class OpenStores:
    engine: AsyncEngine
    mongo: AsyncMongoClient[dict[str, Any]]
    db: AsyncDatabase[dict[str, Any]]
    documents: DocumentStore
    breaker: CircuitBreaker
    knowledge: KnowledgeService
    lock: DataDirLock | None
    secantus: SecantusServer | None


async def open_stores(settings: Settings, *, migrate: bool = True) -> OpenStores:
    """Every store open (MongoDB unreachable at start only degrades the server)."""
    # before anything touches the data dir (migrations, SecantusDB files): writable, and ours
    check_writable(settings.data_dir, *sqlite_files(settings))
    lock: DataDirLock | None = None
    if settings.database_url is None or settings.mongodb_url is None:  # an embedded store
        lock = DataDirLock(settings.data_dir)
        lock.acquire()
    secure_data_dir(settings.data_dir)  # after the writability check: it names the path
    pool: dict[str, int] = {}
    if not settings.sql_url.startswith("sqlite"):
        pool = {
            "pool_size": settings.database_pool_size,
            "max_overflow": settings.database_max_overflow,
        }
    engine = create_engine(
        settings.sql_url, echo=settings.sql_echo, schema=settings.database_schema, **pool
    )
    metrics.ENABLED = settings.metrics_enabled
    listeners: list[Any] = []
    if settings.metrics_enabled:
        instrument_engine(engine)
    if settings.otel_enabled:
        enable_agent_tracing(include_content=settings.otel_include_content)
        trace_engine(engine)
        listeners.append(MongoSpans())
    secantus: SecantusServer | None = None
    breaker = CircuitBreaker(retry_seconds=settings.mongodb_breaker_seconds)
    try:
        if migrate:
            await upgrade(engine)
        if settings.mongodb_url is not None:
            mongo_url = settings.mongodb_url.get_secret_value()
        else:
            secantus = await start_embedded(settings.data_dir)
            mongo_url = secantus.url
            write_mongodb_url(settings.data_dir, mongo_url)
            log.info("started SecantusDB (MongoDB protocol) on port %d", secantus.port)
        mongo = connect(
            mongo_url,
            timeout_ms=settings.mongodb_timeout_ms,
            event_listeners=[*listeners, breaker],
        )
        db = mongo[settings.mongodb_database]
        documents = DocumentStore(db, window=settings.conversation_window, breaker=breaker)
        if settings.metrics_enabled:
            documents.observe = observe_mongo
        try:
            await ensure_indexes(db)
        except Exception as exc:
            log.error("MongoDB not reachable at start (%s); serving degraded", type(exc).__name__)
        knowledge = await open_knowledge(settings, engine)
    except BaseException:
        await engine.dispose()
        if secantus is not None:
            await secantus.stop()
        if lock is not None:
            lock.release()
        raise
    return OpenStores(
        engine=engine,
        mongo=mongo,
        db=db,
        documents=documents,
        breaker=breaker,
        knowledge=knowledge,
        lock=lock,
        secantus=secantus,
    )
