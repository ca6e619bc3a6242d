"""Concurrent turns' MongoDB writes go out together (``stores/mongo/turn_writes.py``, issue 17).

The single-process SecantusDB spends its CPU per command, and the tail of a burst of turns
waited on it. Turns written at once now cost two commands between them, an ``insert_many`` and
an unordered ``bulk_write``, and each turn still gets its own outcome: applied, refused by the
guard (a replay), or its own error.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from pymongo import AsyncMongoClient, UpdateOne, monitoring
from pymongo.errors import BulkWriteError

from employeevirtual.stores.mongo.documents import DocumentStore
from employeevirtual.stores.mongo.secantus import SecantusServer
from employeevirtual.stores.mongo.turn_writes import TurnWrites
from employeevirtual.stores.records import ConversationRecord, MessageRecord, TurnUsage
from support.factories import turn_messages

USAGE = TurnUsage(model="m", input_tokens=3, output_tokens=4, cost=None, execution_time=0.5)


class _Commands(monitoring.CommandListener):
    def __init__(self) -> None:
        self.names: list[str] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name in ("insert", "update"):
            self.names.append(event.command_name)

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


@pytest.fixture
async def store(secantus: SecantusServer) -> AsyncIterator[tuple[DocumentStore, _Commands]]:
    commands = _Commands()
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        secantus.url, tz_aware=True, event_listeners=[commands]
    )
    name = f"turn_writes_{uuid.uuid4().hex[:8]}"
    yield DocumentStore(client[name], window=20), commands
    await client.drop_database(name)
    await client.close()


def _turn(
    conversation: ConversationRecord | None = None, *, seq: int = 1
) -> tuple[ConversationRecord, list[MessageRecord]]:
    """A conversation (a new one unless given) as committed with a turn of two messages from
    ``seq`` on, and those messages."""
    user, agent = uuid.uuid4(), uuid.uuid4()
    now = datetime.now(UTC)
    if conversation is None:
        conversation = ConversationRecord(
            id=uuid.uuid4(),
            user_id=user,
            agent_id=agent,
            title="t",
            status="active",
            session_id=None,
            metadata={},
            created_at=now,
            updated_at=now,
            last_message_at=now,
            message_count=0,
            total_tokens=0,
            total_cost=Decimal(0),
            total_response_time=Decimal(0),
            agent_runs=0,
            synced_seq=0,
            last_error=None,
        )
    made = turn_messages(conversation.user_id, conversation.agent_id, conversation.id, at=now)
    messages = [replace(m, seq=seq + i) for i, m in enumerate(made)]
    return replace(conversation, message_count=seq + 1), messages


async def test_turns_written_at_once_share_two_commands(
    store: tuple[DocumentStore, _Commands],
) -> None:
    """A lone turn costs its two commands, sent at once; 30 turns at once cost two as well."""
    documents, commands = store
    conversation, messages = _turn()
    assert await documents.write_turn(conversation, messages, USAGE)
    assert commands.names == ["insert", "update"]
    commands.names.clear()
    turns = [_turn() for _ in range(30)]
    applied = await asyncio.gather(*(documents.write_turn(c, m, USAGE) for c, m in turns))
    assert applied == [True] * 30
    assert commands.names == ["insert", "update"]
    assert await documents.messages.count_documents({}) == 62
    for conversation, _ in turns:
        doc = await documents.conversations.find_one({"_id": str(conversation.id)})
        assert doc is not None
        assert doc["metadata"]["message_count"] == 2
        assert doc["metadata"]["last_seq"] == 2
        assert [m["seq"] for m in doc["messages"]] == [1, 2]


async def test_a_conversations_turns_keep_their_order_and_a_replay_is_refused(
    store: tuple[DocumentStore, _Commands],
) -> None:
    """Two turns of one conversation queued together go out one after the other (never in
    one unordered batch), and a replay in the same batch as other turns is refused alone."""
    documents, commands = store
    first, first_messages = _turn()
    second, second_messages = _turn(first, seq=3)
    other, other_messages = _turn()
    applied = await asyncio.gather(
        documents.write_turn(first, first_messages, USAGE),
        documents.write_turn(second, second_messages, USAGE),
        documents.write_turn(other, other_messages, USAGE),
    )
    assert applied == [True, True, True]
    # the first batch has a turn of each conversation; the second turn of one waits for it
    assert commands.names == ["insert", "update"] * 2
    doc = await documents.conversations.find_one({"_id": str(first.id)})
    assert doc is not None
    assert doc["metadata"]["message_count"] == 4
    assert doc["metadata"]["last_seq"] == 4
    assert [m["seq"] for m in doc["messages"]] == [1, 2, 3, 4]

    another, another_messages = _turn()
    commands.names.clear()
    applied = await asyncio.gather(
        documents.write_turn(first, first_messages, USAGE),  # a replay: the guard refuses it
        documents.write_turn(another, another_messages, USAGE),
    )
    assert applied == [False, True]
    assert commands.names == ["insert", "update"]
    doc = await documents.conversations.find_one({"_id": str(first.id)})
    assert doc is not None
    assert doc["metadata"]["message_count"] == 4


class _FailingOne:
    """A collection whose ``insert_many`` refuses the documents of one conversation (a write
    error other than a duplicate key), inserting the rest, as an unordered insert does."""

    def __init__(self, conversation: str) -> None:
        self.conversation = conversation
        self.inserted: list[dict[str, Any]] = []
        self.updates: list[UpdateOne] = []

    async def insert_many(self, docs: list[dict[str, Any]], ordered: bool) -> None:
        assert ordered is False
        errors = [
            {"index": i, "code": 121, "errmsg": "invalid"}
            for i, d in enumerate(docs)
            if d["conversation_id"] == self.conversation
        ]
        self.inserted += [d for d in docs if d["conversation_id"] != self.conversation]
        if errors:
            raise BulkWriteError({"writeErrors": errors, "nInserted": len(self.inserted)})

    async def bulk_write(self, updates: list[UpdateOne], ordered: bool) -> None:
        assert ordered is False
        self.updates += updates


async def test_a_turn_whose_messages_fail_gets_its_error_and_no_update() -> None:
    """Its conversation document is left alone (its messages are not there), as when each turn
    wrote on its own; the other turns of the batch are written and applied."""
    bad = str(uuid.uuid4())
    fake = _FailingOne(bad)
    writes = TurnWrites(fake, fake)
    doc = {"conversation_id": bad}
    good = [{"conversation_id": str(uuid.uuid4())} for _ in range(2)]
    outcomes = await asyncio.gather(
        writes.write(bad, [doc], UpdateOne({"_id": bad}, {"$set": {"x": 1}})),
        *(
            writes.write(d["conversation_id"], [d], UpdateOne({"_id": d["conversation_id"]}, {}))
            for d in good
        ),
        return_exceptions=True,
    )
    assert isinstance(outcomes[0], BulkWriteError)
    assert outcomes[1:] == [True, True]
    assert fake.inserted == good
    assert [u._filter["_id"] for u in fake.updates] == [d["conversation_id"] for d in good]


class _OddReply(_FailingOne):
    """Its first ``bulk_write`` fails with a write error of a shape the writer does not know
    (no index); later ones apply."""

    def __init__(self) -> None:
        super().__init__("none")
        self.odd = True

    async def bulk_write(self, updates: list[UpdateOne], ordered: bool) -> None:
        if self.odd:
            self.odd = False
            raise BulkWriteError({"writeErrors": [{"code": 121}], "nModified": 0})
        await super().bulk_write(updates, ordered)


async def test_an_unforeseen_failure_fails_its_batch_and_the_writer_goes_on() -> None:
    """The batch's turns get the error (not a cancellation they did not ask for), and a turn
    queued behind them is still written."""
    fake = _OddReply()
    writes = TurnWrites(fake, fake)
    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    a = asyncio.ensure_future(writes.write(first, [{"conversation_id": first}], UpdateOne({}, {})))
    await asyncio.sleep(0)  # ``a`` queued and the writer started
    b = asyncio.ensure_future(
        writes.write(second, [{"conversation_id": second}], UpdateOne({}, {}))
    )
    outcomes = await asyncio.gather(a, b, return_exceptions=True)
    assert isinstance(outcomes[0], KeyError)
    assert outcomes[1] is True
    assert len(fake.updates) == 1  # the second turn's
