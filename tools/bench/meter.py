"""Store round trips and time counted from the drivers themselves.

SQLAlchemy cursor and transaction events, and PyMongo command monitoring, add to the ``Tally``
active in the current context (a contextvar, which SQLAlchemy carries into its greenlets and the
async PyMongo driver keeps in the calling task). Work outside any tally (the batched sync-ack
flush, index creation, driver heartbeats) is counted in ``background``; of it, the inserts into
``chat_analytics`` (the flush's batch of the turns' runs, or the relay's) are also counted in
``batched_analytics`` (commands and documents), so a report can amortise them over the turns.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

from pymongo import monitoring
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from employeevirtual.stores.sql.engine import READ_AUTOCOMMIT

__all__ = ["StoreMeter", "Tally"]


@dataclass
class Tally:
    sql_statements: int = 0
    sql_transactions: int = 0
    sql_seconds: float = 0.0
    mongo_commands: int = 0
    mongo_seconds: float = 0.0

    def add(self, other: Tally) -> None:
        for name, value in asdict(other).items():
            setattr(self, name, getattr(self, name) + value)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# what a replay of a captured command must not carry over (the session and cluster clock)
_SESSION_FIELDS = ("lsid", "$clusterTime", "$db", "txnNumber", "$readPreference")

_current: contextvars.ContextVar[Tally | None] = contextvars.ContextVar("ev_bench_tally")


class _MongoListener(monitoring.CommandListener):
    def __init__(self, meter: StoreMeter) -> None:
        self.meter = meter

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        self.meter.tally().mongo_commands += 1
        if (
            _current.get(None) is None
            and event.command_name == "insert"
            and event.command.get("insert") == "chat_analytics"
        ):
            self.meter.batched_analytics["inserts"] += 1
            self.meter.batched_analytics["documents"] += len(event.command.get("documents", ()))
        if self.meter.capture is not None and _current.get(None) is not None:
            command = {k: v for k, v in event.command.items() if k not in _SESSION_FIELDS}
            self.meter.capture.append(
                {"kind": "mongo", "database": event.database_name, "command": command}
            )

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        self.meter.tally().mongo_seconds += event.duration_micros / 1e6

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        self.meter.tally().mongo_seconds += event.duration_micros / 1e6


class StoreMeter:
    """One per process. ``attach_sql(engine)`` any time; register ``mongo_listener`` globally
    (``pymongo.monitoring.register``) before the Mongo client is created."""

    def __init__(self) -> None:
        self.background = Tally()
        self.requests = Tally()  # the sum of every finished ``scope`` tally
        # background inserts into chat_analytics: the turns' runs, batched by the sync-ack flush
        self.batched_analytics = {"inserts": 0, "documents": 0}
        self.mongo_listener = _MongoListener(self)
        # when a list: every statement, transaction edge and Mongo command of a request, in
        # order, for the floor's replay (tools.bench.floor)
        self.capture: list[dict[str, Any]] | None = None

    def tally(self) -> Tally:
        return _current.get(None) or self.background

    @contextmanager
    def scope(self) -> Iterator[Tally]:
        """Count what the current task does inside the block (one HTTP request, say)."""
        tally = Tally()
        token = _current.set(tally)
        try:
            yield tally
        finally:
            _current.reset(token)
            self.requests.add(tally)

    def register_mongo(self) -> None:
        """Once per process: every meter's listener counts into the same current tally, so a
        second one (another bench in the same process) would count each command twice."""
        registered = monitoring._LISTENERS.command_listeners
        if not any(isinstance(listener, _MongoListener) for listener in registered):
            monitoring.register(self.mongo_listener)

    def attach_sql(self, engine: AsyncEngine) -> None:
        sync_engine = engine.sync_engine

        @event.listens_for(sync_engine, "before_cursor_execute")
        def _before(
            conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool
        ) -> None:
            conn.info["ev_bench_started"] = time.perf_counter()
            if self.capture is not None and _current.get(None) is not None:
                self.capture.append(
                    {"kind": "sql", "statement": statement, "params": parameters, "many": many}
                )

        @event.listens_for(sync_engine, "after_cursor_execute")
        def _after(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            tally = self.tally()
            started = conn.info.pop("ev_bench_started", None)
            if started is not None:
                tally.sql_seconds += time.perf_counter() - started
            # SQLite's BEGIN IMMEDIATE is issued from the "begin" event: a transaction, counted
            # there, not a statement of the turn.
            if not statement.lstrip()[:5].upper().startswith("BEGIN"):
                tally.sql_statements += 1

        @event.listens_for(sync_engine, "begin")
        def _begin(conn: Any) -> None:
            options = conn.get_execution_options()
            if not options.get(READ_AUTOCOMMIT) and options.get("isolation_level") != "AUTOCOMMIT":
                self.tally().sql_transactions += 1
                conn.info["ev_bench_in_transaction"] = True
                if self.capture is not None and _current.get(None) is not None:
                    self.capture.append({"kind": "begin"})

        def _end(conn: Any) -> None:
            ended = conn.info.pop("ev_bench_in_transaction", False)
            if ended and self.capture is not None and _current.get(None) is not None:
                self.capture.append({"kind": "end"})

        event.listen(sync_engine, "commit", _end)
        event.listen(sync_engine, "rollback", _end)
