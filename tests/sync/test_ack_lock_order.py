"""The sync-ack flush takes its row locks in a conversation delete's order, so the two wait for
each other instead of deadlocking (PostgreSQL; SQLite has one writer at a time).

A delete locks a conversation's summaries, then its row. The flush used to update the
conversations' rows, then the summaries: with a delete between its two statements, PostgreSQL
found the cycle and aborted one of them, a 503 for the person deleting (seen once in CI) or
acknowledgements left to the relay. Here a third connection holds a second conversation's row,
so the flush stops between its statements; the delete starts and waits on the flush; the row is
let go and both must finish.
"""

from __future__ import annotations

import asyncio
import os

import httpx
import pytest
from sqlalchemy import func, select, update

from employeevirtual.runtime import Runtime
from employeevirtual.settings import Settings
from employeevirtual.stores.sql import tables
from employeevirtual.sync.acks import SyncAcks
from support import factories
from support.pg_locks import backend_pid, blocked_by

pytestmark = [
    pytest.mark.skipif(
        not os.environ.get("EV_TEST_POSTGRES_URL"), reason="PostgreSQL only (EV_TEST_POSTGRES_URL)"
    ),
    pytest.mark.parametrize("backend", ["postgres"]),
]


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """A 2-message window summarized at every turn, by the offline summary."""
    return settings.model_copy(
        update={
            "agent_context_messages": 2,
            "memory_summary_every": 1,
            "memory_summary_model": "offline",
        }
    )


async def test_a_flush_beside_a_delete_waits_instead_of_deadlocking(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    assert runtime.memory is not None
    owner = await factories.user(runtime)
    agent = await factories.agent(runtime, owner)
    deleted = await factories.conversation(runtime, owner, agent, ["one", "two", "three"])
    held = await factories.conversation(runtime, owner, agent, ["one"])
    await runtime.memory.worker.drain()
    await runtime.acks.flush()

    # both conversations and the summary unacknowledged again, as before a flush
    c, s = tables.conversations.c, tables.conversation_summaries.c
    async with runtime.engine.begin() as conn:
        await conn.execute(
            update(tables.conversations).where(c.id.in_([deleted.id, held.id])).values(synced_seq=0)
        )
        await conn.execute(
            update(tables.conversation_summaries)
            .where(s.conversation_id == deleted.id)
            .values(synced_at=None)
        )
        version = (
            await conn.execute(select(func.max(s.version)).where(s.conversation_id == deleted.id))
        ).scalar_one()
    assert version is not None, "the deleted conversation needs a summary for the flush to mark"
    acks = SyncAcks(runtime.engine, runtime.documents)
    acks.ack(deleted.id, 1, deleted.message_count)  # acknowledged first, as a turn's would be
    acks.ack(held.id, 1, held.message_count)
    acks.ack_summary(deleted.id, version)

    async with runtime.engine.connect() as holder:
        await holder.begin()
        await holder.execute(select(c.id).where(c.id == held.id).with_for_update())
        flush = asyncio.create_task(acks.flush())
        flusher = await blocked_by(runtime.engine, await backend_pid(holder))
        delete = asyncio.create_task(
            client.delete(
                f"/api/conversations/{deleted.id}", headers=factories.headers(runtime, owner)
            )
        )
        await blocked_by(runtime.engine, flusher)  # the delete waits on the flush
        await holder.rollback()

    async with asyncio.timeout(30):
        r = await delete
        await flush
    assert r.status_code == 204, r.text
    async with runtime.engine.connect() as conn:
        synced = (await conn.execute(select(c.synced_seq).where(c.id == held.id))).scalar_one()
    assert synced == held.message_count  # the flush committed: not aborted as a deadlock's victim
