"""A turn's write on SQLite, counted in trips to aiosqlite's worker thread (issue 17).

SQLite's writers of a process queue on one lock, held while their transaction runs; each trip
to the driver's thread waits for a wake-up of the event loop, so under load the lock's hold
time, and the server's write throughput, is counted in trips. A turn on a conversation that
exists (nothing else to write: ``write_transaction(single_statement=True)``) is one trip:
BEGIN IMMEDIATE, the counters' UPDATE, the messages' INSERT and COMMIT, where they took four.
What the trip writes is what the four wrote, a conversation that is gone writes nothing, and a
failure is rolled back in the same trip, raised as before, and leaves the connection usable.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import aiosqlite
import httpx
import pytest
from sqlalchemy import event, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from employeevirtual.chat import service as chat_service
from employeevirtual.runtime import Runtime
from employeevirtual.stores.records import TurnUsage
from employeevirtual.stores.sql.conversations import ConversationRepository
from employeevirtual.stores.sql.engine import read_connection, write_transaction
from employeevirtual.stores.sql.tables import conversations, messages
from support.api import account, create_agent
from support.factories import turn_messages

pytestmark = pytest.mark.parametrize("backend", ["sqlite"])


@pytest.fixture
def trips(monkeypatch: pytest.MonkeyPatch) -> dict[Any, int]:
    """Every trip to an aiosqlite worker thread, by aiosqlite connection."""
    counts: dict[Any, int] = {}
    real = aiosqlite.Connection._execute

    async def counted(self: aiosqlite.Connection, fn: Any, *args: Any, **kwargs: Any) -> Any:
        counts[self] = counts.get(self, 0) + 1
        return await real(self, fn, *args, **kwargs)

    monkeypatch.setattr(aiosqlite.Connection, "_execute", counted)
    return counts


@pytest.fixture
def turn_writes(monkeypatch: pytest.MonkeyPatch, trips: dict[Any, int]) -> list[int]:
    """The worker-thread trips of each write block the chat service opens, from its BEGIN to
    its COMMIT and the connection's return to the pool."""
    counts: list[int] = []
    real = chat_service.write_transaction

    @asynccontextmanager
    async def counted(engine: AsyncEngine, **kwargs: Any) -> AsyncIterator[Any]:
        before = dict(trips)
        driver = None
        try:
            async with real(engine, **kwargs) as conn:
                driver = (await conn.get_raw_connection()).driver_connection
                yield conn
        finally:
            if driver is not None:
                counts.append(trips.get(driver, 0) - before.get(driver, 0))

    monkeypatch.setattr(chat_service, "write_transaction", counted)
    return counts


async def _turns(client: httpx.AsyncClient, n: int) -> tuple[UUID, UUID, UUID]:
    """(user, agent, conversation) after ``n`` turns of a new conversation."""
    me = await account(client)
    agent = await create_agent(client, me.headers)
    body: dict[str, Any] = {"message": "hello", "agent_id": agent["id"]}
    for i in range(n):
        r = await client.post("/api/chat/agent", json=body, headers=me.headers)
        assert r.status_code == 200, r.text
        body = {"message": f"turn {i}", "conversation_id": r.json()["conversation_id"]}
    return UUID(me.id), UUID(agent["id"]), UUID(body["conversation_id"])


async def test_a_steady_turns_write_is_one_trip(
    client: httpx.AsyncClient, turn_writes: list[int]
) -> None:
    await _turns(client, 6)
    # the first turn creates the conversation (a transaction); each next one is one trip
    assert turn_writes[1:] == [1] * 5, turn_writes


_USAGE = TurnUsage(
    model="offline", input_tokens=11, output_tokens=7, cost=0.000123, execution_time=1.234567
)


async def _stored(runtime: Runtime, cid: UUID) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The conversation's row and its messages' rows, as SQLAlchemy reads them."""
    async with read_connection(runtime.engine) as conn:
        row = (await conn.execute(select(conversations).where(conversations.c.id == cid))).one()
        found = await conn.execute(
            select(messages).where(messages.c.conversation_id == cid).order_by(messages.c.seq)
        )
        return dict(row._mapping), [dict(r._mapping) for r in found]


_COUNTERS = ("message_count", "total_tokens", "total_cost", "total_response_time", "agent_runs")


async def test_the_trip_writes_what_the_transaction_wrote(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    user_id, agent_id, old = await _turns(client, 2)
    *_, new = await _turns(client, 2)
    at = datetime.now(UTC)
    written = {}
    for cid, single in ((old, False), (new, True)):
        before, _ = await _stored(runtime, cid)
        async with write_transaction(runtime.engine, single_statement=single) as conn:
            appended = await ConversationRepository(conn).append(
                cid, turn_messages(user_id, agent_id, cid, at=at), _USAGE, now=at, error="e"
            )
        assert appended is not None
        row, rows = await _stored(runtime, cid)
        added = {k: row[k] - before[k] for k in _COUNTERS}
        written[single] = appended, row, rows, added

    (record, stored), row, rows, added = written[True]
    (old_record, old_stored), old_row, old_rows, old_added = written[False]
    assert added == old_added
    assert added["message_count"] == 2 and added["agent_runs"] == 1
    for r in (row, old_row):
        assert (r["message_count"], r["last_error"]) == (6, "e")
        assert r["last_message_at"] == r["updated_at"] == at
    assert [m["seq"] for m in rows] == [1, 2, 3, 4, 5, 6] == [m["seq"] for m in old_rows]
    assert [m.seq for m in stored] == [5, 6] == [m.seq for m in old_stored]

    def columns(m: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in m.items() if k not in ("id", "conversation_id")}

    assert [columns(m) for m in rows[4:]] == [columns(m) for m in old_rows[4:]]
    assert [m["id"] for m in rows[4:]] == [m.id for m in stored]
    assert rows[5]["message_metadata"] == {"tool_calls": [{"id": "t1", "args": {"x": 1.5}}]}
    assert rows[4]["created_at"] == at and rows[5]["edited_at"] == at
    for new_row, old_one in zip(rows[4:], old_rows[4:], strict=True):
        assert {k: type(v) for k, v in new_row.items()} == {k: type(v) for k, v in old_one.items()}
    # what append returns is what was written
    for returned in (record, old_record):
        assert returned.message_count == 6 and returned.last_error == "e"
    assert {k: getattr(record, k) for k in _COUNTERS} == {k: row[k] for k in _COUNTERS}


async def test_a_conversation_that_is_gone_writes_nothing(
    client: httpx.AsyncClient, runtime: Runtime, trips: dict[Any, int]
) -> None:
    user_id, agent_id, cid = await _turns(client, 1)
    gone = uuid.uuid4()
    at = datetime.now(UTC)
    async with write_transaction(runtime.engine, single_statement=True) as conn:
        driver = (await conn.get_raw_connection()).driver_connection
        before = trips.get(driver, 0)
        appended = await ConversationRepository(conn).append(
            gone, turn_messages(user_id, agent_id, gone, at=at), None, now=at, error=None
        )
        assert appended is None
        assert trips[driver] - before == 1
        assert not driver._conn.in_transaction  # rolled back in the trip
    async with read_connection(runtime.engine) as conn:
        found = await conn.execute(select(messages.c.id).where(messages.c.created_at == at))
        assert found.all() == []
    # the connection keeps working
    async with write_transaction(runtime.engine, single_statement=True) as conn:
        assert await ConversationRepository(conn).append(
            cid, turn_messages(user_id, agent_id, cid, at=at), None, now=at, error=None
        )


async def test_a_failure_in_the_trip_rolls_the_update_back_and_is_raised_as_before(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    user_id, agent_id, cid = await _turns(client, 1)
    at = datetime.now(UTC)
    first = turn_messages(user_id, agent_id, cid, at=at)
    async with write_transaction(runtime.engine, single_statement=True) as conn:
        assert await ConversationRepository(conn).append(cid, first, None, now=at, error=None)
    before = await _stored(runtime, cid)

    events: list[str] = []
    ours: list[Any] = []  # the blocks' connections: background pollers run statements too
    sync_engine = runtime.engine.sync_engine

    def before_execute(conn: Any, *args: Any) -> None:
        if conn in ours:
            events.append("before")

    def after_execute(conn: Any, *args: Any) -> None:
        if conn in ours:
            events.append("after")

    def on_error(context: Any) -> None:
        if context.connection in ours:
            events.append("error")

    listeners = [
        ("before_cursor_execute", before_execute),
        ("after_cursor_execute", after_execute),
        ("handle_error", on_error),
    ]
    for name, listener in listeners:
        event.listen(sync_engine, name, listener)
    try:
        # the same message ids again (what a retry after a lost answer would send)
        again = turn_messages(user_id, agent_id, cid, at=at)
        again[1] = replace(again[1], id=first[1].id)
        drivers = []

        async def append_again(single: bool) -> None:
            async with write_transaction(runtime.engine, single_statement=single) as conn:
                ours.append(conn.sync_connection)
                drivers.append((await conn.get_raw_connection()).driver_connection)
                await ConversationRepository(conn).append(cid, again, _USAGE, now=at, error="x")

        for single in (True, False):
            events.clear()
            with pytest.raises(IntegrityError) as raised:
                await append_again(single)
            assert isinstance(raised.value.orig, sqlite3.IntegrityError)
            assert not drivers[-1]._conn.in_transaction
            # each statement's events are closed: by its after-event or its error
            assert events.count("before") == events.count("after") + events.count("error")
            assert events.count("error") == 1
            assert await _stored(runtime, cid) == before  # the UPDATE rolled back too
    finally:
        for name, listener in listeners:
            event.remove(sync_engine, name, listener)

    # the connection keeps working
    async with write_transaction(runtime.engine, single_statement=True) as conn:
        appended = await ConversationRepository(conn).append(
            cid, turn_messages(user_id, agent_id, cid, at=at), None, now=at, error=None
        )
    assert appended is not None and [m.seq for m in appended[1]] == [5, 6]


async def test_on_sqlalchemys_path_the_write_is_the_same_transaction(
    client: httpx.AsyncClient, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With echo on, the statements take SQLAlchemy's path (which logs them): the same
    transaction, in four trips."""
    user_id, agent_id, cid = await _turns(client, 2)
    monkeypatch.setattr(runtime.engine.sync_engine, "echo", True)
    at = datetime.now(UTC)
    gone = uuid.uuid4()
    async with write_transaction(runtime.engine, single_statement=True) as conn:
        assert (
            await ConversationRepository(conn).append(
                gone, turn_messages(user_id, agent_id, gone, at=at), None, now=at, error=None
            )
            is None
        )
    async with write_transaction(runtime.engine, single_statement=True) as conn:
        appended = await ConversationRepository(conn).append(
            cid, turn_messages(user_id, agent_id, cid, at=at), _USAGE, now=at, error=None
        )
    assert appended is not None and [m.seq for m in appended[1]] == [5, 6]
    row, rows = await _stored(runtime, cid)
    assert row["message_count"] == 6 and [m["seq"] for m in rows] == [1, 2, 3, 4, 5, 6]
