"""Live metrics in Prometheus format (``prometheus-client``), served at ``/metrics`` behind a
bearer token (``EV_METRICS_TOKEN``; unset: no ``/metrics`` at all).

Several worker processes: prometheus-client's **multiprocess mode**. Set
``PROMETHEUS_MULTIPROC_DIR`` to an empty directory before the workers start; every worker then
writes its samples there and any worker's ``/metrics`` answers for all of them (counters and
histograms summed, gauges as documented per gauge). Without it, each process serves its own.

What is measured: HTTP requests by route template and status with latency; turns by outcome
with latency; tokens and cost by model; store operation latency (SQL from SQLAlchemy's cursor
events, MongoDB around each ``DocumentStore`` operation, Redis around the client's commands); relay
lag and backlog and the ingestion queue's depth (measured from SQL at scrape time); streaming
responses open now (``api.sse``); 429 rejections by route; budget refusals.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

__all__ = [
    "BUDGET_REFUSALS",
    "CONTENT_TYPE_LATEST",
    "ENABLED",
    "HTTP_DURATION",
    "HTTP_REQUESTS",
    "INGESTION_QUEUE_DEPTH",
    "OPEN_STREAMS",
    "RATE_LIMIT_REJECTIONS",
    "RELAY_BACKLOG",
    "RELAY_LAG",
    "STORE_DURATION",
    "instrument_engine",
    "instrument_redis",
    "observe_http",
    "observe_mongo",
    "record_turn",
    "render",
]

_LATENCY = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
_STORE = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5)

HTTP_REQUESTS = Counter(
    "ev_http_requests", "HTTP requests by route template and status", ["method", "route", "status"]
)
HTTP_DURATION = Histogram(
    "ev_http_request_duration_seconds",
    "HTTP request latency by route template",
    ["method", "route"],
    buckets=_LATENCY,
)
TURNS = Counter("ev_turns", "chat turns by outcome (success, provider, timeout, ...)", ["outcome"])
TURN_DURATION = Histogram(
    "ev_turn_duration_seconds", "chat turn latency by outcome", ["outcome"], buckets=_LATENCY
)
TOKENS = Counter("ev_tokens", "model tokens by model and direction", ["model", "direction"])
COST = Counter("ev_cost", "model cost (provider currency) by model", ["model"])
STORE_DURATION = Histogram(
    "ev_store_operation_duration_seconds",
    "store operation latency: SQL statements, MongoDB commands, Redis commands",
    ["store", "operation"],
    buckets=_STORE,
)
RELAY_LAG = Gauge(
    "ev_relay_lag_seconds",
    "age of the oldest message MongoDB lacks (measured at scrape time)",
    multiprocess_mode="mostrecent",
)
RELAY_BACKLOG = Gauge(
    "ev_relay_backlog_conversations",
    "conversations whose messages MongoDB lacks (measured at scrape time)",
    multiprocess_mode="mostrecent",
)
OPEN_STREAMS = Gauge("ev_open_streams", "streaming responses open now", multiprocess_mode="livesum")
INGESTION_QUEUE_DEPTH = Gauge(
    "ev_ingestion_queue_depth",
    "knowledge documents queued or being ingested (measured at scrape time)",
    multiprocess_mode="mostrecent",
)
RATE_LIMIT_REJECTIONS = Counter(
    "ev_rate_limit_rejections", "requests refused with 429, by route template", ["route"]
)
BUDGET_REFUSALS = Counter(
    "ev_budget_refusals", "turns refused (402) by an exhausted budget, by scope", ["scope"]
)


def render() -> bytes:
    """The exposition text: this process's registry, or every worker's in multiprocess mode."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
    return generate_latest(REGISTRY)


_children: dict[tuple[Any, ...], Any] = {}


def _child(metric: Any, *labels: str) -> Any:
    """``metric.labels(*labels)``, bound once per label set (``labels`` takes a lock and
    validates the names on every call: a few microseconds, several times a request)."""
    key = (metric, *labels)
    child = _children.get(key)
    if child is None:
        child = _children[key] = metric.labels(*labels)
    return child


def observe_http(method: str, route: str, status: int, seconds: float) -> None:
    _child(HTTP_REQUESTS, method, route, str(status)).inc()
    _child(HTTP_DURATION, method, route).observe(seconds)
    if status == 429:
        _child(RATE_LIMIT_REJECTIONS, route).inc()


ENABLED = True  # set from EV_METRICS_ENABLED at start (turn metrics are recorded when True)


def record_turn(
    outcome: str,
    seconds: float,
    *,
    model: str | None = None,
    input_tokens: int = 0,
    output_tokens: int = 0,
    cost: Decimal | float | None = None,
) -> None:
    if not ENABLED:
        return
    _child(TURNS, outcome).inc()
    _child(TURN_DURATION, outcome).observe(seconds)
    if model is not None:
        if input_tokens:
            _child(TOKENS, model, "input").inc(input_tokens)
        if output_tokens:
            _child(TOKENS, model, "output").inc(output_tokens)
        if cost:
            _child(COST, model).inc(float(cost))


_SQL_VERBS = frozenset({"SELECT", "INSERT", "UPDATE", "DELETE", "BEGIN", "COMMIT", "ROLLBACK"})
_store_children: dict[tuple[str, str], Any] = {}


def _store(store: str, operation: str) -> Any:
    """The histogram child for (store, operation), bound once (``labels`` takes a lock)."""
    child = _store_children.get((store, operation))
    if child is None:
        child = _store_children[(store, operation)] = STORE_DURATION.labels(store, operation)
    return child


def instrument_engine(engine: AsyncEngine) -> None:
    """Time every SQL statement at the driver (``before/after_cursor_execute``)."""
    sync_engine = engine.sync_engine

    @event.listens_for(sync_engine, "before_cursor_execute")
    def _before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        conn.info.setdefault("ev_started", []).append(time.perf_counter())

    @event.listens_for(sync_engine, "after_cursor_execute")
    def _after(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        started = conn.info.get("ev_started")
        if not started:
            return
        verb = statement.lstrip()[:8].split(None, 1)[0].upper() if statement.strip() else ""
        _store("sql", verb if verb in _SQL_VERBS else "other").observe(
            time.perf_counter() - started.pop()
        )

    @event.listens_for(sync_engine, "handle_error")
    def _error(context: Any) -> None:
        conn = context.connection
        if conn is not None and conn.info.get("ev_started"):
            conn.info["ev_started"].pop()


def observe_mongo(operation: str, seconds: float) -> None:
    """A ``DocumentStore`` operation's time (``DocumentStore.observe``), by method name."""
    _store("mongodb", operation).observe(seconds)


def instrument_redis(client: Any) -> None:
    """Time a ``redis.asyncio.Redis`` client's commands (it has no event hooks of its own)."""
    original: Callable[..., Awaitable[Any]] = client.execute_command

    @functools.wraps(original)
    async def timed(*args: Any, **options: Any) -> Any:
        started = time.perf_counter()
        try:
            return await original(*args, **options)
        finally:
            name = str(args[0]).upper() if args else "?"
            _store("redis", name).observe(time.perf_counter() - started)

    client.execute_command = timed
