"""The floor a turn is measured against, in a fresh process with the server's libraries and loop.

``python -m tools.bench.floor SPEC`` (a pickle the bench writes) prints one JSON line:

* ``agent_ms``: CPU of one bare ``Agent.run`` on the bench's instant model, with a history of
  the turn's size (the agent's context window of user/agent messages), nothing around it;
* ``sql_ms``: CPU of the turn's own SQL statements, captured from the server at the driver's
  cursor and replayed with the raw driver, in the same transactions (ROLLBACK in place of
  COMMIT, so the database is left as it was): asyncpg, or ``sqlite3`` on one thread of its own
  with each transaction (or statement outside one) in one hand-off to it, as the server's
  driver runs a turn's write (``stores.sql.one_trip``);
* ``mongo_ms``: CPU of the turn's MongoDB commands, captured from PyMongo's command monitoring
  and replayed with ``db.command`` on a raw async client;
* ``stream``: what streaming costs Pydantic AI itself: bare ``Agent.run`` on the bench's
  20-word model, not streamed and streamed (an ``event_stream_handler`` that reads every event),
  with the same history: the floor of issue 11's streamed / plain CPU ratio.

Replays need the turn's inserts to be new again: before each round, and outside the timed part,
the rows and documents the turn inserted are deleted (inside the same SQL transaction, so the
rollback restores them) and the conversation document is put back as it was before the turn.
CPU is ``time.process_time`` (every thread of the process, so SQLite's thread counts).
"""

from __future__ import annotations

import asyncio
import json
import pickle
import re
import sqlite3
import statistics
import sys
import time
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

from pydantic_ai import Agent
from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelResponse,
    TextPart,
    UserPromptPart,
)
from pydantic_ai.models.function import AgentInfo, FunctionModel
from sqlalchemy.engine import make_url

__all__ = ["STREAM_WORDS", "FloorSpec", "combined_floor", "measure_floor"]

STREAM_WORDS = [f"word{i} " for i in range(20)]  # the bench's stream model's answer

_INSERT = re.compile(r"^\s*INSERT INTO\s+(\S+)\s*\(([^)]*)\)", re.IGNORECASE)
# an INSERT inside a data-modifying CTE (PostgreSQL's one-statement turn write)
_INSERT_WITHIN = re.compile(r"\bINSERT INTO\s+(\S+)\s*\(", re.IGNORECASE)
_WRITE = re.compile(r"\b(INSERT|UPDATE|DELETE)\b", re.IGNORECASE)


@dataclass
class FloorSpec:
    history_messages: int
    rounds: int
    sql_url: str
    captured: list[dict[str, Any]]
    mongo_url: str
    # the conversation document before the captured turn: (database, collection, document)
    mongo_restore: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)


class _Paused:
    """CPU spent on the untimed resets inside the current round (not the turn's cost)."""

    seconds = 0.0


async def _cpu_of(rounds: int, prepare: Callable[[], Awaitable[None]] | None, step: Any) -> float:
    """CPU ms per round of ``step`` (``prepare`` runs before each round, not counted)."""
    total = 0.0
    for i in range(rounds + 3):  # 3 warm-up rounds
        if prepare is not None:
            await prepare()
        _Paused.seconds = 0.0
        started = time.process_time()
        await step()
        if i >= 3:
            total += time.process_time() - started - _Paused.seconds
    return total / rounds * 1000


def _history(messages: int) -> list[ModelMessage]:
    now = datetime.now(UTC) - timedelta(minutes=messages)
    out: list[ModelMessage] = []
    for i in range(messages):
        at = now + timedelta(minutes=i)
        if i % 2 == 0:
            out.append(ModelRequest(parts=[UserPromptPart("How are we doing?", timestamp=at)]))
        else:
            out.append(ModelResponse(parts=[TextPart("ok")], timestamp=at))
    return out


async def agent_floor(spec: FloorSpec) -> float:
    async def instant(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        return ModelResponse(parts=[TextPart("ok")], model_name="bench-instant")

    agent = Agent(FunctionModel(instant), instructions="Answer briefly.")
    history = _history(spec.history_messages)

    async def step() -> None:
        await agent.run("How are we doing this quarter?", message_history=history or None)

    return await _cpu_of(spec.rounds, None, step)


async def stream_floor(spec: FloorSpec) -> dict[str, float]:
    async def words(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        return ModelResponse(parts=[TextPart("".join(STREAM_WORDS))], model_name="bench-stream")

    async def words_stream(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[str]:
        for word in STREAM_WORDS:
            yield word

    agent = Agent(FunctionModel(words, stream_function=words_stream), instructions="Answer.")
    history = _history(spec.history_messages) or None

    async def read_all(_ctx: Any, stream: AsyncIterable[Any]) -> None:
        async for _ in stream:
            pass

    async def plain() -> None:
        await agent.run("How are we doing?", message_history=history)

    async def streamed() -> None:
        await agent.run("How are we doing?", message_history=history, event_stream_handler=read_all)

    # alternating, so that drift hits both
    plain_ms = streamed_ms = 0.0
    for _ in range(4):
        plain_ms += await _cpu_of(max(1, spec.rounds // 4), None, plain) / 4
        streamed_ms += await _cpu_of(max(1, spec.rounds // 4), None, streamed) / 4
    return {"plain_ms": plain_ms, "streamed_ms": streamed_ms, "ratio": streamed_ms / plain_ms}


def _inserted_ids(entry: dict[str, Any]) -> tuple[str, list[Any]] | None:
    """The table and primary keys (column ``id``) an INSERT writes, or None for other statements.
    An INSERT inside a CTE takes its rows from a SELECT of named parameters: its ids are then
    every UUID among the statement's parameters (the other UUIDs, the conversation's or the
    user's, are no row's ``id`` in that table)."""
    match = _INSERT.match(entry["statement"])
    if match is None:
        within = _INSERT_WITHIN.search(entry["statement"])
        if within is None or entry["many"]:
            return None
        return within.group(1), [p for p in entry["params"] if isinstance(p, UUID)]
    table = match.group(1)
    columns = [c.strip().strip('"') for c in match.group(2).split(",")]
    if "id" not in columns:
        raise ValueError(f"cannot replay an INSERT into {table} without an id column")
    k = columns.index("id")
    rows = entry["params"] if entry["many"] else [entry["params"]]
    ids: list[Any] = []
    for params in rows:
        values = list(params.values()) if isinstance(params, dict) else list(params)
        ids.extend(values[k :: len(columns)])
    return table, ids


def _writes_outside_transactions(captured: list[dict[str, Any]]) -> bool:
    """Whether a captured write ran on its own (autocommit: PostgreSQL's one-statement turn
    write), which the replay must still roll back."""
    depth = 0
    for entry in captured:
        if entry["kind"] == "begin":
            depth += 1
        elif entry["kind"] == "end":
            depth -= 1
        elif entry["kind"] == "sql" and depth == 0 and _WRITE.search(entry["statement"]):
            return True
    return False


async def _pg_floor(spec: FloorSpec) -> float:
    import asyncpg

    url = make_url(spec.sql_url).set(drivername="postgresql")
    conn = await asyncpg.connect(url.render_as_string(hide_password=False))
    try:
        steps: list[Callable[[], Awaitable[Any]]] = []
        for entry in spec.captured:
            if entry["kind"] == "begin":
                steps.append(lambda: conn.execute("BEGIN"))
            elif entry["kind"] == "end":
                steps.append(lambda: conn.execute("ROLLBACK"))
            elif entry["kind"] == "sql":
                steps.append(_pg_statement(conn, entry))
        # a write the turn ran on its own is replayed inside a transaction of the replay's own,
        # not counted (the turn sent no BEGIN or COMMIT), and rolled back
        untimed = _writes_outside_transactions(spec.captured)

        async def step() -> None:
            if untimed:
                await _untimed(conn.execute("BEGIN"))
            try:
                for s in steps:
                    await s()
            finally:
                if untimed:
                    await _untimed(conn.execute("ROLLBACK"))

        return await _cpu_of(spec.rounds, None, step)
    finally:
        await conn.close()


async def _untimed(work: Awaitable[Any]) -> None:
    paused = time.process_time()
    await work
    _Paused.seconds += time.process_time() - paused


def _pg_statement(conn: Any, entry: dict[str, Any]) -> Callable[[], Awaitable[Any]]:
    sql, params = entry["statement"], entry["params"]
    inserted = _inserted_ids(entry)

    async def run() -> Any:
        if inserted is not None:  # not counted: a new row again, undone by the rollback
            table, ids = inserted
            paused = time.process_time()
            await conn.execute(f"DELETE FROM {table} WHERE id = ANY($1)", ids)
            _Paused.seconds += time.process_time() - paused
        if entry["many"]:
            return await conn.executemany(sql, params)
        return await conn.fetch(sql, *params)

    return run


async def _sqlite_floor(spec: FloorSpec) -> float:
    path = make_url(spec.sql_url).database
    assert path is not None
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
    try:
        for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON"):
            db.execute(f"PRAGMA {pragma}").close()
        transactions = _sqlite_transactions(spec.captured)
        loop = asyncio.get_running_loop()
        with ThreadPoolExecutor(max_workers=1) as thread:  # the driver's thread

            async def step() -> None:
                for transaction in transactions:
                    await loop.run_in_executor(thread, _sqlite_run, db, transaction)

            return await _cpu_of(spec.rounds, None, step)
    finally:
        db.close()


# a statement's SQL, parameters, executemany, and the DELETE that makes its inserts new again
_SqliteStatement = tuple[str, Any, bool, tuple[str, list[Any]] | None]


def _sqlite_transactions(captured: list[dict[str, Any]]) -> list[list[_SqliteStatement]]:
    """The captured statements, a list a trip to the driver's thread: a transaction's (its
    BEGIN IMMEDIATE up to ROLLBACK in place of its end), or one statement outside any."""
    transactions: list[list[_SqliteStatement]] = []
    within = False
    for entry in captured:
        kind = entry["kind"]
        if kind == "begin":
            transactions.append([])
        elif kind in ("sql", "end"):
            if not within:
                transactions.append([])
            rollback: _SqliteStatement = ("ROLLBACK", (), False, None)
            transactions[-1].append(_sqlite_statement(entry) if kind == "sql" else rollback)
        within = kind == "begin" or (within and kind != "end")
    return transactions


def _sqlite_statement(entry: dict[str, Any]) -> _SqliteStatement:
    inserted = _inserted_ids(entry)
    delete = None
    if inserted is not None:
        table, ids = inserted
        delete = (f"DELETE FROM {table} WHERE id IN ({','.join('?' * len(ids))})", ids)
    return entry["statement"], entry["params"], entry["many"], delete


def _sqlite_run(db: sqlite3.Connection, transaction: list[_SqliteStatement]) -> None:
    """On the driver's thread: the statements, each one's rows fetched and its cursor closed."""
    for sql, params, many, delete in transaction:
        if delete is not None:  # not counted: a new row again, undone by the rollback
            paused = time.process_time()
            db.execute(*delete).close()
            _Paused.seconds += time.process_time() - paused
        cursor = db.executemany(sql, params) if many else db.execute(sql, params)
        cursor.fetchall()
        cursor.close()


async def mongo_floor(spec: FloorSpec) -> float:
    from pymongo import AsyncMongoClient

    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(spec.mongo_url, tz_aware=True)
    try:
        commands = [e for e in spec.captured if e["kind"] == "mongo"]

        async def prepare() -> None:
            for database, collection, doc in spec.mongo_restore:
                await client[database][collection].replace_one({"_id": doc["_id"]}, doc, True)
            for e in commands:
                cmd = e["command"]
                if "insert" in cmd:
                    ids = [d["_id"] for d in cmd.get("documents", [])]
                    await client[e["database"]][cmd["insert"]].delete_many({"_id": {"$in": ids}})

        async def step() -> None:
            for e in commands:
                await client[e["database"]].command(e["command"])

        return await _cpu_of(spec.rounds, prepare, step)
    finally:
        await client.close()


async def measure_floor(spec: FloorSpec) -> dict[str, Any]:
    backend = make_url(spec.sql_url).get_backend_name()
    agent_ms = await agent_floor(spec)
    sql_ms = await (_pg_floor(spec) if backend == "postgresql" else _sqlite_floor(spec))
    mongo_ms = await mongo_floor(spec)
    kinds = [e["kind"] for e in spec.captured]
    return {
        "agent_ms": agent_ms,
        "sql_ms": sql_ms,
        "mongo_ms": mongo_ms,
        "total_ms": agent_ms + sql_ms + mongo_ms,
        "stream": await stream_floor(spec),
        "rounds": spec.rounds,
        "history_messages": spec.history_messages,
        "sql_statements": kinds.count("sql"),
        "sql_transactions": kinds.count("begin"),
        "mongo_commands": kinds.count("mongo"),
        "loop": type(asyncio.get_running_loop()).__module__.split(".")[0],
    }


def combined_floor(halves: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The floor measured in parts (the bench: before and after its steady step): each part's
    mean, the halves kept (``halves``) to show the drift between them."""
    parts = ("agent_ms", "sql_ms", "mongo_ms")
    out = dict(halves[0])
    for key in parts:
        out[key] = statistics.fmean(h[key] for h in halves)
    out["total_ms"] = sum(out[key] for key in parts)
    out["rounds"] = sum(h["rounds"] for h in halves)
    plain = statistics.fmean(h["stream"]["plain_ms"] for h in halves)
    streamed = statistics.fmean(h["stream"]["streamed_ms"] for h in halves)
    out["stream"] = {"plain_ms": plain, "streamed_ms": streamed, "ratio": streamed / plain}
    out["halves"] = [{key: h[key] for key in (*parts, "total_ms")} for h in halves]
    return out


def main() -> None:
    spec: FloorSpec = pickle.loads(Path(sys.argv[1]).read_bytes())
    try:
        import uvloop
    except ImportError:  # the server runs on asyncio's loop too
        result = asyncio.run(measure_floor(spec))
    else:
        result = uvloop.run(measure_floor(spec))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
