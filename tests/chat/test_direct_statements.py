"""The turn's hot statements on the driver's connection (``stores/sql/direct.py``, issue 17).

Each is checked against SQLAlchemy's own execution of the same statement on the same data: the
same columns, values and types. And what SQLAlchemy gives around a statement still holds on the
direct path: the statement events, its exceptions, and the retry of a first statement on a
connection PostgreSQL dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import uuid
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import greenlet
import httpx
import pytest
from sqlalchemy import Float, bindparam, event, func, insert, select, text
from sqlalchemy.exc import IntegrityError

from employeevirtual.runtime import Runtime
from employeevirtual.stores.records import MessageRecord
from employeevirtual.stores.sql import direct
from employeevirtual.stores.sql.conversations import (
    _TURN_READ,
    ConversationReader,
    ConversationRepository,
)
from employeevirtual.stores.sql.engine import read_connection, write_transaction
from employeevirtual.stores.sql.memory import _direct_turn_query
from employeevirtual.stores.sql.messages import MessageRepository
from employeevirtual.stores.sql.tables import memories, messages
from employeevirtual.stores.sql.turn_statements import APPLY_TURN
from support.api import account, create_agent, register_and_login


async def _conversation(client: httpx.AsyncClient) -> tuple[UUID, UUID, UUID]:
    """(user, agent, conversation) after two turns, with a memory of the person."""
    me = await account(client)
    headers = me.headers
    agent = await create_agent(client, headers)
    r = await client.post(
        "/api/chat/agent", json={"message": "hello", "agent_id": agent["id"]}, headers=headers
    )
    assert r.status_code == 200, r.text
    cid = r.json()["conversation_id"]
    r = await client.post(
        "/api/chat/agent", json={"message": "again", "conversation_id": cid}, headers=headers
    )
    assert r.status_code == 200, r.text
    return UUID(me.id), UUID(agent["id"]), UUID(cid)


def _same(direct_rows: list[Any], sqlalchemy_rows: list[Any]) -> None:
    assert direct_rows and all(isinstance(r, direct.DirectRow) for r in direct_rows)
    got = [dict(r._mapping) for r in direct_rows]
    want = [dict(r._mapping) for r in sqlalchemy_rows]
    assert got == want
    for g, w in zip(got, want, strict=True):
        assert {k: type(v) for k, v in g.items()} == {k: type(v) for k, v in w.items()}


async def test_direct_rows_are_sqlalchemys_rows(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    user_id, agent_id, cid = await _conversation(client)
    # the turn's ack (``synced_seq``) lands now, not between the two reads compared below
    await runtime.acks.flush()
    engine = runtime.engine
    read = {"conversation_id": cid, "user_id": user_id}
    memory_read = _direct_turn_query(shared=False, in_conversation=True, summary=True)
    scope = {"user_id": user_id, "agent_id": agent_id, "conversation_id": cid}
    async with write_transaction(engine) as conn:  # a memory of the person, to read back
        now = datetime.now(UTC)
        await conn.execute(
            insert(memories).values(
                id=uuid.uuid4(),
                user_id=user_id,
                agent_id=agent_id,
                conversation_id=cid,
                content="likes tea",
                created_at=now,
                updated_at=now,
            )
        )
    async with read_connection(engine) as conn:
        assert direct.driver_runner(conn) is not None  # the direct path runs on this backend
        _same(
            await _TURN_READ.rows(conn, read), list(await conn.execute(_TURN_READ.statement, read))
        )
        _same(
            await memory_read.rows(conn, scope),
            list(await conn.execute(memory_read.statement, scope)),
        )
    now = datetime.now(UTC)
    applied = {
        "conversation_id": cid,
        "messages": 2,
        "tokens": 7,
        "cost": 0,
        "response_time": 0,
        "runs": 1,
        "now": now,
        "error": None,
    }
    async with write_transaction(engine) as conn:
        by_sqlalchemy = list(await conn.execute(APPLY_TURN.statement, applied))
        by_driver = await APPLY_TURN.rows(conn, applied)
    # the second UPDATE saw the first: the same row, two more messages and 7 more tokens
    assert by_driver[0].message_count == by_sqlalchemy[0].message_count + 2
    assert by_driver[0].total_tokens == by_sqlalchemy[0].total_tokens + 7
    expected = {
        **dict(by_sqlalchemy[0]._mapping),
        "message_count": by_driver[0].message_count,
        "total_tokens": by_driver[0].total_tokens,
        "agent_runs": by_driver[0].agent_runs,
    }
    assert dict(by_driver[0]._mapping) == expected

    # rows written by the driver read back the same through SQLAlchemy
    count = by_driver[0].message_count
    records = [
        MessageRecord(
            id=uuid.uuid4(),
            conversation_id=cid,
            seq=count + 1 + i,
            user_id=user_id,
            agent_id=None if i == 0 else agent_id,
            content=f"message {i} — ünïcode",
            message_type="user" if i == 0 else "agent",
            metadata={"tool_calls": [{"id": "t1", "args": {"x": 1.5}}]} if i else {},
            created_at=now,
        )
        for i in range(2)
    ]
    async with write_transaction(engine) as conn:
        await MessageRepository(conn).insert_many(records)
    async with read_connection(engine) as conn:
        rows = list(
            await conn.execute(
                select(messages)
                .where(messages.c.id.in_([r.id for r in records]))
                .order_by(messages.c.seq)
            )
        )
    assert [
        (r.id, r.seq, r.agent_id, r.content, r.message_metadata, r.created_at, r.is_edited)
        for r in rows
    ] == [(m.id, m.seq, m.agent_id, m.content, m.metadata, m.created_at, False) for m in records]


async def test_direct_statements_are_seen_by_statement_listeners(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    """Metrics, tracing and the bench's meters listen to statements: the direct path tells them."""
    user_id, _, cid = await _conversation(client)
    seen: list[tuple[str, str]] = []
    ours: list[Any] = []  # the block's connection: background pollers run statements too

    def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if conn in ours:
            seen.append(("before", statement))

    def after(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if conn in ours:
            seen.append(("after", statement))

    sync_engine = runtime.engine.sync_engine
    event.listen(sync_engine, "before_cursor_execute", before)
    event.listen(sync_engine, "after_cursor_execute", after)
    try:
        async with read_connection(runtime.engine) as conn:
            ours.append(conn.sync_connection)
            assert direct.driver_runner(conn) is not None
            found = await ConversationReader(conn).get_with_agent(cid, user_id)
    finally:
        event.remove(sync_engine, "before_cursor_execute", before)
        event.remove(sync_engine, "after_cursor_execute", after)
    assert found is not None and found[0].id == cid
    assert [kind for kind, _ in seen] == ["before", "after"]
    assert seen[0][1] == seen[1][1] and "conversations" in seen[0][1]


async def test_a_direct_statements_error_is_sqlalchemys_and_the_transaction_rolls_back(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    user_id, agent_id, cid = await _conversation(client)
    now = datetime.now(UTC)
    twice = [
        MessageRecord(
            id=uuid.UUID(int=7),
            conversation_id=cid,
            seq=1000 + i,
            user_id=user_id,
            agent_id=None,
            content="dup",
            message_type="user",
            metadata={},
            created_at=now,
        )
        for i in range(2)
    ]

    async def write() -> None:
        async with write_transaction(runtime.engine) as conn:
            applied = await ConversationRepository(conn).apply_turn(
                cid, None, messages=2, now=now, error=None
            )
            assert applied is not None
            await MessageRepository(conn).insert_many(twice)  # the same id twice

    with pytest.raises(IntegrityError):
        await write()
    async with read_connection(runtime.engine) as conn:
        found = await ConversationReader(conn).get_with_agent(cid, user_id)
        assert found is not None
        assert found[0].message_count == 4  # the UPDATE went with the failed transaction
        assert not list(await conn.execute(select(messages.c.id).where(messages.c.seq >= 1000)))
    # the pool's connections are usable afterwards: a turn goes through
    headers = await register_and_login(client)
    agent = await create_agent(client, headers)
    r = await client.post(
        "/api/chat/agent", json={"message": "still fine", "agent_id": agent["id"]}, headers=headers
    )
    assert r.status_code == 200, r.text
    assert agent_id != UUID(agent["id"])


@pytest.mark.skipif(
    not os.environ.get("EV_TEST_POSTGRES_URL"), reason="PostgreSQL only (EV_TEST_POSTGRES_URL)"
)
@pytest.mark.parametrize("backend", ["postgres"])
async def test_a_first_direct_statement_on_a_dropped_connection_is_retried(
    client: httpx.AsyncClient, runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    """The connection is gone under the first statement: the direct read fails with a
    disconnect, and ``_RetryFirst`` runs it again on a fresh connection: the caller sees only
    the answer."""
    user_id, _, cid = await _conversation(client)
    caplog.set_level(logging.WARNING, logger="employeevirtual.stores.sql.engine")
    async with read_connection(runtime.engine) as conn:
        assert direct.driver_runner(conn) is not None
        driver = (await conn.get_raw_connection()).driver_connection
        # the socket goes; asyncpg learns it only when it next waits on it (as when the server
        # or a firewall dropped the connection while it sat in the pool)
        driver._transport.abort()
        found = await ConversationReader(conn).get_with_agent(cid, user_id)
    assert found is not None and found[0].id == cid
    assert any("retrying once" in r.getMessage() for r in caplog.records)


@pytest.mark.skipif(not os.environ.get("EV_TEST_POSTGRES_URL"), reason="PostgreSQL only")
@pytest.mark.parametrize("backend", ["postgres"])
async def test_a_cancelled_direct_statement_does_not_return_its_connection_to_the_pool(
    runtime: Runtime,
) -> None:
    """A turn cancelled in the middle of a statement (a user's cancel, shutdown): the
    connection's state is unknown, so it is dropped, as SQLAlchemy's own path does."""
    sleep = direct.DirectStatement(select(func.pg_sleep(bindparam("seconds", type_=Float))))
    pids: list[int] = []

    async def statement_cut_short() -> None:
        async with write_transaction(runtime.engine) as conn:
            pids.append((await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one())
            await sleep.rows(conn, {"seconds": 30})

    task = asyncio.create_task(statement_cut_short())
    await asyncio.sleep(0.5)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    for _ in range(50):  # the dropped connection's backend ends
        async with read_connection(runtime.engine) as conn:
            alive = (
                await conn.execute(
                    text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid"),
                    {"pid": pids[0]},
                )
            ).scalar_one()
        if not alive:
            break
        await asyncio.sleep(0.1)
    assert not alive


_TRACED: ContextVar[bool] = ContextVar("traced", default=False)


@pytest.mark.skipif(not os.environ.get("EV_TEST_POSTGRES_URL"), reason="PostgreSQL only")
@pytest.mark.parametrize("backend", ["postgres"])
async def test_a_direct_statements_block_hands_off_to_sqlalchemys_greenlet_twice(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    """Each hand-off to SQLAlchemy's greenlet costs 15-30 µs of CPU around a turn's statement
    (issue 17). A read, and a single-statement write, make two: the checkout and the check-in.
    Their autocommit and the statement's autobegin send nothing on asyncpg, so they make none
    (they made one each)."""
    user_id, _, cid = await _conversation(client)
    spawned: list[greenlet.greenlet] = []  # kept: ids of greenlets gone could be reused

    def trace(event: str, args: Any) -> None:
        _origin, target = args
        # the block's only (its tasks carry the marker): background pollers run SQL too
        if (
            event == "switch"
            and target.parent is not None
            and target not in spawned
            and _TRACED.get()
        ):
            spawned.append(target)

    async def read() -> None:
        async with read_connection(runtime.engine) as conn:
            assert await ConversationReader(conn).get_with_agent(cid, user_id) is not None

    async def single() -> None:
        async with write_transaction(runtime.engine, single_statement=True) as conn:
            assert await ConversationReader(conn).get_with_agent(cid, user_id) is not None

    for block in (read, single):
        await block()  # the pool's connection is open and the statement prepared
        previous = greenlet.settrace(trace)
        marked = _TRACED.set(True)
        try:
            await block()
        finally:
            _TRACED.reset(marked)
            greenlet.settrace(previous)
        assert len(spawned) == 2, block.__name__
        spawned.clear()
