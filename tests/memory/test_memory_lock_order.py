"""A turn's ``forget`` and "delete all my memories" take memory rows in a conversation delete's
order, so each waits for the delete (or the delete for it) instead of deadlocking (PostgreSQL;
SQLite has one writer at a time).

A conversation's delete locks its summaries, its own memories (by id), its feedback, its
messages, then its row. A turn used to update the conversation's row before forgetting the
memory, and ``delete_all`` forgot memories newest first while the delete took them in index
order: either, with a delete between its statements, closed a cycle that PostgreSQL broke by
aborting one side (a 409/503 for the person deleting, or a failed turn). Here a third
connection holds a row to stop one transaction between its statements, the other starts and
waits on it, the row is let go and both must finish.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelResponse,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
)
from pydantic_ai.models.function import AgentInfo, FunctionModel
from sqlalchemy import Table, func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from employeevirtual.runtime import Runtime
from employeevirtual.stores.sql import tables
from support import factories
from support.memory import PROBE_MODEL, install_probe
from support.pg_locks import backend_pid, blocked_by

pytestmark = [
    pytest.mark.skipif(
        not os.environ.get("EV_TEST_POSTGRES_URL"), reason="PostgreSQL only (EV_TEST_POSTGRES_URL)"
    ),
    pytest.mark.parametrize("backend", ["postgres"]),
]

NOT_SHARED = {"enabled": True, "shared": False}  # memories kept per conversation


async def _insert_memories(
    runtime: Runtime,
    user_id: uuid.UUID,
    agent_id: uuid.UUID,
    rows: list[tuple[uuid.UUID, uuid.UUID]],
) -> None:
    """(memory id, conversation id) rows, created a second apart in this order, all synced."""
    at = datetime.now(UTC) - timedelta(minutes=1)
    async with runtime.engine.begin() as conn:
        for i, (memory_id, conversation_id) in enumerate(rows):
            await conn.execute(
                insert(tables.memories).values(
                    id=memory_id,
                    user_id=user_id,
                    agent_id=agent_id,
                    conversation_id=conversation_id,
                    content=f"fact {i}",
                    version=1,
                    synced_version=1,  # nothing for the relay to carry meanwhile
                    created_at=at + timedelta(seconds=i),
                    updated_at=at + timedelta(seconds=i),
                )
            )


async def _count(engine: AsyncEngine, table: Table, **where: object) -> int:
    query = select(func.count()).select_from(table)
    for name, value in where.items():
        query = query.where(table.c[name] == value)
    async with engine.connect() as conn:
        return int((await conn.execute(query)).scalar_one())


async def test_a_forgetting_turn_beside_a_delete_waits_instead_of_deadlocking(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    install_probe(runtime)
    owner = await factories.user(runtime)
    agent = await factories.agent(runtime, owner, model=PROBE_MODEL, memory=NOT_SHARED)
    first = await factories.turn(runtime, owner, "remember: Lives in Porto.", agent=agent)
    cid = first.conversation.id
    assert runtime.memory is not None
    await runtime.memory.worker.drain()
    assert await _count(runtime.engine, tables.memories, conversation_id=cid) == 1
    headers = factories.headers(runtime, owner)
    m = tables.messages.c

    async with runtime.engine.connect() as holder:
        # one of the conversation's messages: the delete stops after taking its memories
        await holder.begin()
        await holder.execute(
            select(m.id).where(m.conversation_id == cid, m.seq == 1).with_for_update()
        )
        delete = asyncio.create_task(client.delete(f"/api/conversations/{cid}", headers=headers))
        deleter = await blocked_by(runtime.engine, await backend_pid(holder))
        body = {"message": "forget: porto", "conversation_id": str(cid)}
        turn = asyncio.create_task(client.post("/api/chat/agent", json=body, headers=headers))
        # the turn waits on the memory: before its conversation's row (the old order had
        # taken that row and made the delete wait on the turn, a deadlock)
        await blocked_by(runtime.engine, deleter)
        await holder.rollback()

    async with asyncio.timeout(30):
        deleted, answered = await delete, await turn
    assert deleted.status_code == 204, deleted.text  # not a deadlock's victim
    assert answered.status_code == 404, answered.text  # its conversation went first
    for table in (tables.conversations, tables.messages, tables.memories):
        column = "id" if table is tables.conversations else "conversation_id"
        assert await _count(runtime.engine, table, **{column: cid}) == 0, table.name
    assert await runtime.documents.messages.count_documents({"conversation_id": str(cid)}) == 0


async def test_deleting_all_memories_beside_a_conversation_delete_waits_instead_of_deadlocking(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    owner = await factories.user(runtime)
    agent = await factories.agent(runtime, owner, memory=NOT_SHARED)
    deleted = await factories.conversation(runtime, owner, agent)
    other = await factories.conversation(runtime, owner, agent)
    assert runtime.memory is not None
    await runtime.memory.worker.drain()

    # by id: low (the deleted conversation's, oldest), middle (another conversation's, held
    # below), high (the deleted conversation's, newest); inserted oldest first, so the
    # delete's scan meets them oldest first
    low, middle, high = sorted(uuid.uuid4() for _ in range(3))
    rows = [(low, deleted.id), (middle, other.id), (high, deleted.id)]
    await _insert_memories(runtime, owner.id, agent.id, rows)
    headers = factories.headers(runtime, owner)

    async with runtime.engine.connect() as holder:
        # the other conversation's memory: "delete all" stops between the deleted one's two
        await holder.begin()
        await holder.execute(
            select(tables.memories.c.id).where(tables.memories.c.id == middle).with_for_update()
        )
        delete_all = asyncio.create_task(client.delete("/api/memories", headers=headers))
        forgetter = await blocked_by(runtime.engine, await backend_pid(holder))
        delete = asyncio.create_task(
            client.delete(f"/api/conversations/{deleted.id}", headers=headers)
        )
        # the delete waits on "delete all" for a memory before holding one it will want
        await blocked_by(runtime.engine, forgetter)
        await holder.rollback()

    async with asyncio.timeout(30):
        forgot, gone = await delete_all, await delete
    assert forgot.status_code == 200, forgot.text  # neither is a deadlock's victim
    assert forgot.json() == {"deleted": 3}
    assert gone.status_code == 204, gone.text
    assert await _count(runtime.engine, tables.memories, conversation_id=deleted.id) == 0
    assert await _count(runtime.engine, tables.memories, deleted_at=None) == 0


async def test_two_first_turns_of_one_user_that_both_remember_wait_instead_of_deadlocking(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    """Each first turn inserts its memory (whose foreign key takes a key share on the user's
    row) before it locks the user's row to create its conversation. With ``FOR UPDATE`` each
    turn's lock waited on the other's key share; ``FOR NO KEY UPDATE`` does not."""
    install_probe(runtime)
    owner = await factories.user(runtime)
    agents = [
        await factories.agent(runtime, owner, model=PROBE_MODEL, memory=NOT_SHARED)
        for _ in range(2)
    ]
    headers = factories.headers(runtime, owner)
    u = tables.users.c
    waiting = "SELECT pid FROM pg_stat_activity WHERE :pid = ANY(pg_blocking_pids(pid))"

    async with runtime.engine.connect() as holder:
        # the user's row, as a turn's lock takes it: the memories' key shares go past it
        await holder.begin()
        await holder.execute(select(u.id).where(u.id == owner.id).with_for_update(key_share=True))
        holder_pid = await backend_pid(holder)
        turns = [
            asyncio.create_task(
                client.post(
                    "/api/chat/agent",
                    json={"message": f"remember: Fact {i}.", "agent_id": str(agent.id)},
                    headers=headers,
                )
            )
            for i, agent in enumerate(agents)
        ]
        async with asyncio.timeout(20):  # both turns wait on the holder, their memories in
            while True:
                async with runtime.engine.connect() as conn:
                    pids = (await conn.execute(text(waiting), {"pid": holder_pid})).all()
                if len(pids) >= 2:
                    break
                await asyncio.sleep(0.02)
        await holder.rollback()

    async with asyncio.timeout(30):
        answered = [await turn for turn in turns]
    for r in answered:
        assert r.status_code == 200, r.text  # neither is a deadlock's victim
        assert r.json()["agent_message"]["message_type"] == "agent", r.text
    assert await _count(runtime.engine, tables.conversations, user_id=owner.id) == 2
    assert await _count(runtime.engine, tables.memories, user_id=owner.id) == 2


FORGET_TWO = "test:forget-two"


def _forget_two(first: uuid.UUID, second: uuid.UUID) -> FunctionModel:
    """A model whose reply forgets ``first``, then ``second`` (by their shown id prefixes)."""

    async def reply(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        last = messages[-1]
        if isinstance(last, ModelRequest) and any(
            isinstance(p, ToolReturnPart) for p in last.parts
        ):
            return ModelResponse(parts=[TextPart("forgotten")])
        return ModelResponse(
            parts=[
                ToolCallPart("forget", {"memory_id": memory_id.hex[:8]}, tool_call_id=f"f{i}")
                for i, memory_id in enumerate((first, second))
            ]
        )

    return FunctionModel(reply, model_name=FORGET_TWO)


async def test_a_turn_forgetting_two_memories_beside_deleting_all_waits_instead_of_deadlocking(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    """A turn that forgets two memories takes them in id order first, as "delete all my
    memories" does: forgetting the newer id, then the older one, it used to hold the newer
    while "delete all" held the older and waited for the newer, a deadlock."""
    # by id: low and high (the turn forgets high, then low), middle (held below)
    while True:
        low, middle, high = ids = sorted(uuid.uuid4() for _ in range(3))
        if len({i.hex[:8] for i in ids}) == 3:
            break
    runtime.models.override(FORGET_TWO, _forget_two(high, low))
    owner = await factories.user(runtime)
    agent = await factories.agent(runtime, owner, model=FORGET_TWO, memory=NOT_SHARED)
    conversation = await factories.conversation(runtime, owner, agent)
    assert runtime.memory is not None
    await runtime.memory.worker.drain()
    await _insert_memories(runtime, owner.id, agent.id, [(i, conversation.id) for i in ids])
    headers = factories.headers(runtime, owner)

    async with runtime.engine.connect() as holder:
        # the middle memory: "delete all" stops holding low, before high
        await holder.begin()
        await holder.execute(
            select(tables.memories.c.id).where(tables.memories.c.id == middle).with_for_update()
        )
        delete_all = asyncio.create_task(client.delete("/api/memories", headers=headers))
        deleter = await blocked_by(runtime.engine, await backend_pid(holder))
        body = {"message": "forget both", "conversation_id": str(conversation.id)}
        turn = asyncio.create_task(client.post("/api/chat/agent", json=body, headers=headers))
        # the turn waits on "delete all" for low: before it holds high (the old order had
        # taken high first, which "delete all" then waited for, a deadlock)
        await blocked_by(runtime.engine, deleter)
        await holder.rollback()

    async with asyncio.timeout(30):
        forgot, answered = await delete_all, await turn
    assert forgot.status_code == 200, forgot.text  # neither is a deadlock's victim
    assert forgot.json() == {"deleted": 3}
    assert answered.status_code == 200, answered.text
    assert answered.json()["agent_message"]["message_type"] == "agent", answered.text
    assert await _count(runtime.engine, tables.memories, deleted_at=None) == 0
