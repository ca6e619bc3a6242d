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

from employeevirtual.request_context import current_request_id, request_id_var
from employeevirtual.stores.mongo.documents import DocumentStore
from employeevirtual.stores.mongo.secantus import SecantusServer
from employeevirtual.stores.mongo.turn_writes import TurnWrites
from employeevirtual.stores.records import ConversationRecord, MessageRecord, TurnUsage
from support.factories import turn_messages

USAGE = TurnUsage(model="m", input_tokens=3, output_tokens=4, cost=None, execution_time=0.5)


class _Commands(monitoring.CommandListener):
    def __init__(self) -> None:
        self.names: list[str] = []
        # the request id each write was sent under (called in the task that sends it)
        self.request_ids: list[str | None] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name in ("insert", "update"):
            self.names.append(event.command_name)
            self.request_ids.append(current_request_id())

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


async def test_each_batch_is_sent_as_its_first_turns_request(
    store: tuple[DocumentStore, _Commands],
) -> None:
    """A batch's commands run in the context of the turn that opened it (its request id, its
    trace, a bench's tally), not in that of the turn that happened to start the writing."""
    documents, commands = store
    first, first_messages = _turn()
    second, second_messages = _turn(first, seq=3)  # the same conversation: a second batch

    async def write_as(request_id: str, conversation: ConversationRecord, m: Any) -> bool:
        request_id_var.set(request_id)
        return await documents.write_turn(conversation, m, USAGE)

    applied = await asyncio.gather(
        write_as("req-first", first, first_messages),
        write_as("req-second", second, second_messages),
    )
    assert applied == [True, True]
    assert commands.names == ["insert", "update"] * 2
    assert commands.request_ids == ["req-first"] * 2 + ["req-second"] * 2


async def test_a_batch_cancelled_before_it_began_cancels_its_turns_and_writing_goes_on(
    store: tuple[DocumentStore, _Commands],
) -> None:
    """The loop shutting down may cancel a batch's task before its first step: its turns are
    cancelled, not left waiting, and the next turn is written (not queued behind it)."""
    documents, commands = store
    conversation, messages = _turn()
    waiting = asyncio.ensure_future(documents.write_turn(conversation, messages, USAGE))
    await asyncio.sleep(0)  # the turn is queued and its batch's task made, not yet begun
    (batch,) = [t for t in asyncio.all_tasks() if t.get_name() == "mongo-turn-writes"]
    batch.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(waiting, 10)
    assert commands.names == []
    other, other_messages = _turn()
    assert await asyncio.wait_for(documents.write_turn(other, other_messages, USAGE), 10)
    assert commands.names == ["insert", "update"]


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


async def test_a_turn_whose_messages_fail_gets_its_error_and_no_update(
    store: tuple[DocumentStore, _Commands],
) -> None:
    """Its conversation document is left alone (its messages are not there), as when each turn
    wrote on its own; the other turns of the batch are written and applied. The messages'
    collection refuses one conversation's documents (a validator: a write error other than a
    duplicate key), as an unordered insert does, inserting the rest."""
    documents, _ = store
    bad, bad_messages = _turn()
    good = [_turn() for _ in range(2)]
    await documents.db.create_collection(
        documents.messages.name, validator={"conversation_id": {"$ne": str(bad.id)}}
    )
    outcomes = await asyncio.gather(
        documents.write_turn(bad, bad_messages, USAGE),
        *(documents.write_turn(c, m, USAGE) for c, m in good),
        return_exceptions=True,
    )
    assert isinstance(outcomes[0], BulkWriteError)
    assert outcomes[1:] == [True, True]
    inserted = {d["conversation_id"] async for d in documents.messages.find({})}
    assert inserted == {str(c.id) for c, _ in good}
    updated = [d["_id"] async for d in documents.conversations.find({})]
    assert sorted(updated) == sorted(str(c.id) for c, _ in good)


class _FailsFirstBatch(TurnWrites):
    """The writer of real collections whose first batch meets an error it did not foresee
    (as a reply of an unknown shape would raise while it is read)."""

    def __init__(self, documents: DocumentStore) -> None:
        super().__init__(documents.messages, documents.conversations)
        self.failed = False

    async def _write(self, batch: list[Any]) -> None:
        if not self.failed:
            self.failed = True
            raise KeyError("index")
        await super()._write(batch)


async def test_an_unforeseen_failure_fails_its_batch_and_the_writer_goes_on(
    store: tuple[DocumentStore, _Commands],
) -> None:
    """The batch's turns get the error (not a cancellation they did not ask for), and a turn
    queued behind them is still written."""
    documents, _ = store
    writes = _FailsFirstBatch(documents)
    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    a = asyncio.ensure_future(
        writes.write(first, [{"conversation_id": first}], UpdateOne({"_id": first}, {"$set": {}}))
    )
    await asyncio.sleep(0)  # ``a`` queued and the writer started
    b = asyncio.ensure_future(
        writes.write(
            second,
            [{"conversation_id": second}],
            UpdateOne({"_id": second}, {"$set": {"x": 1}}, upsert=True),
        )
    )
    outcomes = await asyncio.gather(a, b, return_exceptions=True)
    assert isinstance(outcomes[0], KeyError)
    assert outcomes[1] is True
    # the second turn's update, alone
    assert [d["_id"] async for d in documents.conversations.find({})] == [second]
