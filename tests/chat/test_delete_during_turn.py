"""A conversation's delete wins over a turn that commits in the middle of it (PostgreSQL; SQLite
has one writer at a time).

Under READ COMMITTED the delete's ``DELETE messages`` does not see messages a turn commits after
it started; its ``DELETE conversations`` then failed their foreign key, and the person deleting
got a 409. The delete now runs its transaction once more, which sees and deletes them. Here a
third connection holds one of the conversation's messages, so the delete stops inside its
``DELETE messages``; a turn in that conversation runs to completion meanwhile; the message is
let go and the delete must answer 204, leaving no row of the conversation and one audit row.
"""

from __future__ import annotations

import asyncio
import os

import httpx
import pytest
from sqlalchemy import func, select

from employeevirtual.chat.turn import TurnSucceeded
from employeevirtual.runtime import Runtime
from employeevirtual.stores.sql import tables
from support import factories
from support.pg_locks import backend_pid, blocked_by

pytestmark = [
    pytest.mark.skipif(
        not os.environ.get("EV_TEST_POSTGRES_URL"), reason="PostgreSQL only (EV_TEST_POSTGRES_URL)"
    ),
    pytest.mark.parametrize("backend", ["postgres"]),
]


async def test_a_delete_wins_over_a_turn_committed_in_its_middle(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    owner = await factories.user(runtime)
    agent = await factories.agent(runtime, owner)
    conversation = await factories.conversation(runtime, owner, agent, ["one", "two"])
    m = tables.messages.c

    async with runtime.engine.connect() as holder:
        await holder.begin()
        await holder.execute(
            select(m.id)
            .where(m.conversation_id == conversation.id)
            .order_by(m.seq.desc())
            .limit(1)
            .with_for_update()
        )
        delete = asyncio.create_task(
            client.delete(
                f"/api/conversations/{conversation.id}", headers=factories.headers(runtime, owner)
            )
        )
        await blocked_by(runtime.engine, await backend_pid(holder))  # inside DELETE messages
        late = await factories.turn(runtime, owner, "three", conversation=conversation)
        assert isinstance(late, TurnSucceeded), late
        assert late.conversation.message_count > conversation.message_count
        await holder.rollback()

    async with asyncio.timeout(30):
        r = await delete
    assert r.status_code == 204, r.text
    a = tables.audit_log.c
    async with runtime.engine.connect() as conn:
        left = (
            await conn.execute(
                select(func.count())
                .select_from(tables.messages)
                .where(m.conversation_id == conversation.id)
            )
        ).scalar_one()
        row = (
            await conn.execute(
                select(tables.conversations.c.id).where(
                    tables.conversations.c.id == conversation.id
                )
            )
        ).first()
        audited = (
            (
                await conn.execute(
                    select(a.details).where(
                        a.action == "conversation.delete", a.target_id == str(conversation.id)
                    )
                )
            )
            .scalars()
            .all()
        )
    assert left == 0
    assert row is None
    assert len(audited) == 1
    # the audit row is the second transaction's: it counted the late turn's messages
    assert audited[0]["message_count"] == late.conversation.message_count
