"""Optional OpenTelemetry tracing (``EV_OTEL_ENABLED=true``; off by default).

When on: Pydantic AI's own instrumentation for every agent run (``Agent.instrument_all``),
plus one span per SQL statement and per MongoDB command. Spans go to whatever tracer provider
the process has: with only ``opentelemetry-api`` (a Pydantic AI dependency, always installed)
that is the no-op provider, so nothing is exported anywhere. To export, install
``opentelemetry-sdk`` and an exporter and configure them (for example by starting the server
under ``opentelemetry-instrument``); this project adds neither. When off, nothing is
registered at all: no listener, no span, no cost. Message text is left out of the spans
unless ``EV_OTEL_INCLUDE_CONTENT=true``; store spans carry only the system, the statement's
verb or the command's name, and the database name (never parameters or documents).
"""

from __future__ import annotations

from typing import Any

from opentelemetry import trace
from pydantic_ai import Agent, InstrumentationSettings
from pymongo import monitoring
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

__all__ = ["MongoSpans", "enable_agent_tracing", "trace_engine"]

_tracer = trace.get_tracer("employeevirtual.stores")


def enable_agent_tracing(*, include_content: bool = False) -> None:
    """Pydantic AI's spans for every agent. Prompts, answers, instructions and tool arguments
    and results stay out of the spans unless ``include_content`` (``EV_OTEL_INCLUDE_CONTENT``):
    they are people's messages, and a tracing backend is not where they are kept or erased."""
    Agent.instrument_all(
        InstrumentationSettings(
            include_content=include_content, include_binary_content=include_content
        )
    )


def trace_engine(engine: AsyncEngine) -> None:
    """A span around every SQL statement (``db.system``, the statement's first word)."""
    sync_engine = engine.sync_engine
    system = engine.dialect.name

    @event.listens_for(sync_engine, "before_cursor_execute")
    def _before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        verb = statement.lstrip().split(None, 1)[0].upper() if statement.strip() else "SQL"
        span = _tracer.start_span(f"sql {verb}", kind=trace.SpanKind.CLIENT)
        span.set_attribute("db.system", system)
        conn.info.setdefault("ev_spans", []).append(span)

    @event.listens_for(sync_engine, "after_cursor_execute")
    def _after(conn: Any, *args: Any) -> None:
        spans = conn.info.get("ev_spans")
        if spans:
            spans.pop().end()

    @event.listens_for(sync_engine, "handle_error")
    def _error(context: Any) -> None:
        conn = context.connection
        spans = conn.info.get("ev_spans") if conn is not None else None
        if spans:
            span = spans.pop()
            span.set_status(trace.Status(trace.StatusCode.ERROR))
            span.end()


class MongoSpans(monitoring.CommandListener):
    """A span per MongoDB command, from PyMongo's command events."""

    def __init__(self) -> None:
        self._open: dict[tuple[Any, int], Any] = {}

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        span = _tracer.start_span(f"mongodb {event.command_name}", kind=trace.SpanKind.CLIENT)
        span.set_attribute("db.system", "mongodb")
        span.set_attribute("db.name", event.database_name)
        self._open[(event.connection_id, event.request_id)] = span

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        span = self._open.pop((event.connection_id, event.request_id), None)
        if span is not None:
            span.end()

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        span = self._open.pop((event.connection_id, event.request_id), None)
        if span is not None:
            span.set_status(trace.Status(trace.StatusCode.ERROR))
            span.end()
