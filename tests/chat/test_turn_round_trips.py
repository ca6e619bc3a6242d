"""A turn's write on PostgreSQL, counted in round trips on the wire (issue 17).

A turn on a conversation that exists writes its messages and counters in one statement (a
data-modifying CTE). With nothing else to write it is sent on its own, atomic without BEGIN
and COMMIT: one round trip, where the UPDATE and the INSERT in a transaction took four. A turn
that writes more (an Idempotency-Key's response here) keeps its transaction: BEGIN, the
statement, the key, COMMIT. What makes the lone statement safe is pinned too: it is all or
nothing, a replay of it is refused whole, its first-statement retry holds, and a block that
promised one statement cannot run a second.
"""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from uuid import UUID

import httpx
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError, InvalidRequestError
from sqlalchemy.ext.asyncio import AsyncEngine

from employeevirtual.chat import service as chat_service
from employeevirtual.runtime import Runtime
from employeevirtual.stores.sql.conversations import ConversationReader, ConversationRepository
from employeevirtual.stores.sql.engine import read_connection, write_transaction
from employeevirtual.stores.sql.tables import messages
from support.api import account, create_agent
from support.factories import turn_messages
from support.pg_wire import count_round_trips

pytestmark = [
    pytest.mark.skipif(
        not os.environ.get("EV_TEST_POSTGRES_URL"), reason="PostgreSQL only (EV_TEST_POSTGRES_URL)"
    ),
    pytest.mark.parametrize("backend", ["postgres"]),
]


@pytest.fixture
def turn_writes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The round trips of each write block the chat service opens, its commit included."""
    counts: list[int] = []
    real = chat_service.write_transaction

    @asynccontextmanager
    async def counted(engine: AsyncEngine, **kwargs: Any) -> AsyncIterator[Any]:
        trips = None
        try:
            async with real(engine, **kwargs) as conn:
                trips = await count_round_trips(conn)
                yield conn
        finally:
            if trips is not None:
                trips.stop()
                counts.append(trips.count)

    monkeypatch.setattr(chat_service, "write_transaction", counted)
    return counts


async def _turns(
    client: httpx.AsyncClient, n: int, *, key: str | None = None
) -> tuple[UUID, UUID, UUID, dict[str, str]]:
    """(user, agent, conversation, headers) after ``n`` turns of a new conversation."""
    me = await account(client)
    agent = await create_agent(client, me.headers)
    body: dict[str, Any] = {"message": "hello", "agent_id": agent["id"]}
    for i in range(n):
        headers = {**me.headers, **({"Idempotency-Key": f"{key}-{i}"} if key else {})}
        r = await client.post("/api/chat/agent", json=body, headers=headers)
        assert r.status_code == 200, r.text
        body = {"message": f"turn {i}", "conversation_id": r.json()["conversation_id"]}
    return UUID(me.id), UUID(agent["id"]), UUID(body["conversation_id"]), me.headers


async def test_a_turn_with_nothing_else_to_write_is_one_round_trip(
    client: httpx.AsyncClient, turn_writes: list[int]
) -> None:
    await _turns(client, 6)
    # the first turn creates the conversation (a transaction); each next one is one statement
    assert turn_writes[1:] == [1] * 5, turn_writes


async def test_a_turn_that_writes_more_keeps_its_transaction(
    client: httpx.AsyncClient, turn_writes: list[int]
) -> None:
    await _turns(client, 6, key="k")
    # BEGIN, the messages and counters, the key's response, COMMIT
    assert turn_writes[1:] == [4] * 5, turn_writes


async def _count(runtime: Runtime, cid: UUID, user_id: UUID) -> tuple[int, int]:
    """(the conversation's message_count, its rows in empl.messages)."""
    async with read_connection(runtime.engine) as conn:
        found = await ConversationReader(conn).get_with_agent(cid, user_id)
        rows = await conn.execute(
            select(func.count()).select_from(messages).where(messages.c.conversation_id == cid)
        )
        assert found is not None
        return found[0].message_count, int(rows.scalar_one())


@pytest.mark.parametrize("single", [True, False])
async def test_the_turns_statement_writes_what_the_two_did_and_a_replay_is_refused_whole(
    client: httpx.AsyncClient, runtime: Runtime, single: bool
) -> None:
    user_id, agent_id, cid, _ = await _turns(client, 2)
    before = await _count(runtime, cid, user_id)
    assert before == (4, 4)
    new = turn_messages(user_id, agent_id, cid)
    now = new[-1].created_at
    async with write_transaction(runtime.engine, single_statement=single) as conn:
        appended = await ConversationRepository(conn).append(cid, new, None, now=now, error="x")
    assert appended is not None
    record, stored = appended
    assert record.message_count == 6 and record.last_error == "x"
    assert [m.seq for m in stored] == [5, 6]
    async with read_connection(runtime.engine) as conn:
        rows = list(
            await conn.execute(
                select(messages).where(messages.c.seq > 4, messages.c.conversation_id == cid)
            )
        )
    assert sorted(
        (r.id, r.seq, r.agent_id, r.content, r.message_metadata, r.created_at) for r in rows
    ) == sorted((m.id, m.seq, m.agent_id, m.content, m.metadata, m.created_at) for m in stored)

    # the same messages again (what a retry after a lost answer would send): refused whole,
    # the counters untouched
    with pytest.raises(IntegrityError):
        async with write_transaction(runtime.engine, single_statement=single) as conn:
            await ConversationRepository(conn).append(cid, new, None, now=now, error=None)
    assert await _count(runtime, cid, user_id) == (6, 6)

    # a conversation that is gone: nothing written
    async with write_transaction(runtime.engine, single_statement=single) as conn:
        gone = uuid.uuid4()
        assert (
            await ConversationRepository(conn).append(
                gone, turn_messages(user_id, agent_id, gone, count=1), None, now=now, error=None
            )
            is None
        )


async def test_a_single_statement_block_refuses_a_second_statement(runtime: Runtime) -> None:
    async with write_transaction(runtime.engine, single_statement=True) as conn:
        await conn.execute(text("SELECT 1"))
        with pytest.raises(InvalidRequestError, match="runs one statement"):
            await conn.execute(text("SELECT 2"))


async def test_a_single_statement_on_a_dropped_connection_is_retried_once(
    client: httpx.AsyncClient, runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    user_id, agent_id, cid, _ = await _turns(client, 2)
    caplog.set_level(logging.WARNING, logger="employeevirtual.stores.sql.engine")
    new = turn_messages(user_id, agent_id, cid)
    async with write_transaction(runtime.engine, single_statement=True) as conn:
        driver = (await conn.get_raw_connection()).driver_connection
        driver._transport.abort()  # gone before the statement, unseen by the driver yet
        appended = await ConversationRepository(conn).append(
            cid, new, None, now=new[-1].created_at, error=None
        )
    assert appended is not None and appended[0].message_count == 6
    assert any("retrying once" in r.getMessage() for r in caplog.records)
    assert await _count(runtime, cid, user_id) == (6, 6)


async def test_every_pooled_connection_after_autocommit_blocks_still_runs_transactions(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    """Reads and single-statement writes put their connection in autocommit when they take it
    from the pool (without a greenlet hand-off: ``direct.set_options``), and it must be undone
    when the connection goes back: every connection of the pool, after serving both, runs a
    ``write_transaction`` as a transaction again, whose failure rolls back its write whole."""
    user_id, agent_id, cid, _ = await _turns(client, 1)
    before = await _count(runtime, cid, user_id)
    size = runtime.engine.sync_engine.pool.size()
    pids: dict[str, set[int]] = {"read": set(), "single": set(), "transaction": set()}

    async def pid(conn: Any) -> int:
        return int((await conn.get_raw_connection()).driver_connection.get_server_pid())

    async def on_every_connection(block: Any) -> None:
        # all of the pool's connections at once: each block holds its own until all have one
        barrier = asyncio.Barrier(size)
        await asyncio.gather(*(block(barrier) for _ in range(size)))

    async def read(barrier: asyncio.Barrier) -> None:
        async with read_connection(runtime.engine) as conn:
            await barrier.wait()
            pids["read"].add(await pid(conn))
            assert await ConversationReader(conn).get_with_agent(cid, user_id) is not None

    async def single(barrier: asyncio.Barrier) -> None:
        async with write_transaction(runtime.engine, single_statement=True) as conn:
            await barrier.wait()
            pids["single"].add(await pid(conn))
            assert await ConversationReader(conn).get_with_agent(cid, user_id) is not None

    async def append_then_fail(barrier: asyncio.Barrier) -> None:
        new = turn_messages(user_id, agent_id, cid)
        async with write_transaction(runtime.engine) as conn:
            await barrier.wait()
            pids["transaction"].add(await pid(conn))
            appended = await ConversationRepository(conn).append(
                cid, new, None, now=new[-1].created_at, error=None
            )
            assert appended is not None
            raise RuntimeError("rolled back")

    async def failing(barrier: asyncio.Barrier) -> None:
        with pytest.raises(RuntimeError, match="rolled back"):
            await append_then_fail(barrier)

    for _ in range(3):
        await on_every_connection(read)
        await on_every_connection(single)
    await on_every_connection(failing)
    assert len(pids["read"]) == size and pids["single"] == pids["transaction"] == pids["read"]
    assert await _count(runtime, cid, user_id) == before
