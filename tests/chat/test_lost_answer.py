"""A turn whose one-statement write committed but whose answer was lost (PostgreSQL).

The connection drops after the server ran the turn's statement, before the driver read its
result; the first-statement retry replays it on a fresh connection, and the messages' keys
refuse the replay whole. The turn is stored once, so it is answered as stored (200), not as a
conflicting write (409, after which a client without an Idempotency-Key would send it again).
"""

from __future__ import annotations

import logging
import os
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from employeevirtual.chat import service as chat_service
from employeevirtual.runtime import Runtime
from employeevirtual.settings import Settings
from employeevirtual.stores.sql import engine as sql_engine
from employeevirtual.stores.sql.engine import read_connection
from employeevirtual.stores.sql.rows import message_from_row
from employeevirtual.stores.sql.tables import messages
from employeevirtual.stores.sql.turn_readback import stored_turn
from support.api import account, create_agent
from support.pg_wire import lose_next_answer
from support.stores import mongo_messages, sql_messages, sync_state

pytestmark = [
    pytest.mark.skipif(
        not os.environ.get("EV_TEST_POSTGRES_URL"), reason="PostgreSQL only (EV_TEST_POSTGRES_URL)"
    ),
    pytest.mark.parametrize("backend", ["postgres"]),
]


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """A turn may run while another of the same user's waits for its retry."""
    return settings.model_copy(update={"rate_limit_chat": 1_000_000, "max_concurrent_turns": 10})


class LostAnswers:
    """The chat service's next single-statement write (``arm``) loses its answer;
    ``meanwhile``: run once after the connection dropped, before the statement is retried."""

    def __init__(self) -> None:
        self.armed = False
        self.meanwhile: Callable[[], Awaitable[Any]] | None = None


@pytest.fixture
def lost(monkeypatch: pytest.MonkeyPatch) -> LostAnswers:
    answers = LostAnswers()
    real = chat_service.write_transaction

    @asynccontextmanager
    async def losing(engine: AsyncEngine, **kwargs: Any) -> AsyncIterator[Any]:
        async with real(engine, **kwargs) as conn:
            if answers.armed and kwargs.get("single_statement"):
                answers.armed = False
                await lose_next_answer(conn)
            yield conn

    after_disconnect = sql_engine._OneStatement._after_disconnect

    async def meanwhile_first(self: Any) -> None:
        run, answers.meanwhile = answers.meanwhile, None
        if run is not None:
            await run()
        await after_disconnect(self)

    monkeypatch.setattr(chat_service, "write_transaction", losing)
    monkeypatch.setattr(sql_engine._OneStatement, "_after_disconnect", meanwhile_first)
    return answers


@pytest.fixture
def seen(runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """The history each run was given (its messages' contents)."""
    histories: list[list[str]] = []
    start = runtime.chat.runs.start

    async def spy(user_id: Any, agent: Any, message: str, history: Any, *a: Any, **k: Any) -> Any:
        histories.append([m.content for m in history])
        return await start(user_id, agent, message, history, *a, **k)

    monkeypatch.setattr(runtime.chat.runs, "start", spy)
    return histories


async def _send(
    client: httpx.AsyncClient, headers: dict[str, str], cid: str, message: str
) -> dict[str, Any]:
    r = await client.post(
        "/api/chat/agent", json={"message": message, "conversation_id": cid}, headers=headers
    )
    assert r.status_code == 200, r.text
    return dict(r.json())


async def _conversation(client: httpx.AsyncClient) -> tuple[dict[str, str], str, UUID]:
    """(headers, conversation, user) after two turns: the context cache holds its window."""
    me = await account(client)
    agent = await create_agent(client, me.headers)
    r = await client.post(
        "/api/chat/agent", json={"message": "one", "agent_id": agent["id"]}, headers=me.headers
    )
    assert r.status_code == 200, r.text
    cid = str(r.json()["conversation_id"])
    await _send(client, me.headers, cid, "two")
    return me.headers, cid, UUID(me.id)


async def _stored_once(
    client: httpx.AsyncClient, runtime: Runtime, headers: dict[str, str], cid: str, total: int
) -> list[str]:
    """The conversation's contents in order, after checking that SQL and MongoDB hold each of
    its ``total`` messages once, with seqs 1..total, and counters that say so."""
    in_sql = await sql_messages(runtime, cid)
    assert sorted(in_sql.values()) == list(range(1, total + 1))
    await runtime.acks.flush()
    # the relay, past its grace: a turn whose document update came after a newer one's
    while (await runtime.relay.run_once(now=datetime.now(UTC) + runtime.relay.grace)).advanced:
        pass
    assert await mongo_messages(runtime, cid) == in_sql
    assert await sync_state(runtime, cid) == (total, total)
    doc = await runtime.documents.conversations.find_one({"_id": cid})
    assert doc is not None
    assert (doc["metadata"]["message_count"], doc["metadata"]["last_seq"]) == (total, total)
    conversation = (await client.get(f"/api/conversations/{cid}", headers=headers)).json()
    assert conversation["message_count"] == total
    r = await client.get(
        f"/api/conversations/{cid}/messages", params={"limit": 200}, headers=headers
    )
    listed = r.json()["messages"]
    assert sorted(m["seq"] for m in listed) == list(range(1, total + 1))
    return [m["content"] for m in sorted(listed, key=lambda m: m["seq"])]


async def test_a_turn_whose_answer_was_lost_after_its_commit_is_answered_as_stored(
    client: httpx.AsyncClient,
    runtime: Runtime,
    lost: LostAnswers,
    seen: list[list[str]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    headers, cid, _ = await _conversation(client)
    caplog.set_level(logging.WARNING)
    lost.armed = True
    body = await _send(client, headers, cid, "three")
    assert not lost.armed
    assert (body["user_message"]["seq"], body["agent_message"]["seq"]) == (5, 6)
    assert body["user_message"]["content"] == "three" and body["agent_message"]["content"]
    assert any("retrying once" in r.getMessage() for r in caplog.records)
    assert any("found stored" in r.getMessage() for r in caplog.records)

    contents = await _stored_once(client, runtime, headers, cid, 6)
    assert Counter(contents)["three"] == 1
    # the next turn is given the whole conversation, the lost answer's turn included
    await _send(client, headers, cid, "four")
    assert seen[-1] == contents
    await _stored_once(client, runtime, headers, cid, 8)


async def test_a_turn_read_back_past_a_later_turn_keeps_no_stale_context(
    client: httpx.AsyncClient, runtime: Runtime, lost: LostAnswers, seen: list[list[str]]
) -> None:
    """Another turn commits while the answer is lost: the row read back counts it too. The
    turn is still answered with its own seqs, and its context window (which lacks the other
    turn) is not kept for the row's count."""
    headers, cid, _ = await _conversation(client)
    later: list[dict[str, Any]] = []

    async def another_turn() -> None:
        later.append(await _send(client, headers, cid, "meanwhile"))

    lost.armed, lost.meanwhile = True, another_turn
    body = await _send(client, headers, cid, "three")
    assert [m["user_message"]["seq"] for m in later] == [7]
    assert (body["user_message"]["seq"], body["agent_message"]["seq"]) == (5, 6)

    contents = await _stored_once(client, runtime, headers, cid, 8)
    assert Counter(contents)["three"] == 1 and Counter(contents)["meanwhile"] == 1
    await _send(client, headers, cid, "four")
    assert seen[-1] == contents
    await _stored_once(client, runtime, headers, cid, 10)


async def test_an_opened_turn_read_back_past_a_later_turn_keeps_no_stale_context(
    client: httpx.AsyncClient, runtime: Runtime, lost: LostAnswers, seen: list[list[str]]
) -> None:
    """The same for a streamed turn's first half (the user's message alone): the answer that
    closes it does not extend a window that lacks the other turn."""
    headers, cid, user_id = await _conversation(client)

    async def another_turn() -> None:
        await _send(client, headers, cid, "meanwhile")

    lost.armed, lost.meanwhile = True, another_turn
    request = runtime.chat.request("three", agent_id=None, conversation_id=UUID(cid))
    opened = await runtime.chat.open_turn(user_id, request)
    assert opened.user_message.seq == 5
    outcome = await runtime.chat.answer(opened)
    assert outcome.reply.seq == 8  # the other turn took 6 and 7

    contents = await _stored_once(client, runtime, headers, cid, 8)
    assert Counter(contents)["three"] == 1 and Counter(contents)["meanwhile"] == 1
    await _send(client, headers, cid, "four")
    assert seen[-1] == contents
    await _stored_once(client, runtime, headers, cid, 10)


async def test_a_turn_is_read_back_only_when_all_of_it_is_stored_in_its_conversation(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    _, cid, _ = await _conversation(client)
    _, other, _ = await _conversation(client)
    async with read_connection(runtime.engine) as conn:
        query = select(messages).where(messages.c.conversation_id == UUID(cid), messages.c.seq > 2)
        turn = [message_from_row(r) for r in await conn.execute(query.order_by(messages.c.seq))]
        asked = [replace(m, seq=0) for m in turn]  # as the turn sent them, before its write
        found = await stored_turn(conn, UUID(cid), asked)
        assert found is not None and found[1] == turn and found[0].message_count == 4
        assert await stored_turn(conn, UUID(other), asked) is None  # another conversation's
        unsent = replace(asked[-1], id=uuid.uuid4())
        assert await stored_turn(conn, UUID(cid), [asked[0], unsent]) is None  # half of it
        assert await stored_turn(conn, UUID(cid), asked[::-1]) is None  # not in its order
