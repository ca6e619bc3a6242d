"""A turn's ``chat_analytics`` documents are batched (``SyncAcks``): the turn writes MongoDB with
two commands, the flush inserts the documents of every turn since the last one with one
``insert_many`` before it acknowledges those turns in SQL. A failed insert leaves the turns
unacknowledged for the relay; a buffered document never brings back what a delete or an
erasure removed, even one another process commits between the flush's check and its insert."""

from __future__ import annotations

import contextlib
import contextvars
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from pymongo import monitoring

from employeevirtual.chat.turn import TurnSucceeded
from employeevirtual.runtime import Runtime
from employeevirtual.settings import Settings
from employeevirtual.stores.mongo.secantus import SecantusServer
from employeevirtual.stores.records import UserRecord
from employeevirtual.sync.acks import SyncAcks
from support import factories
from support.access import Account, account, app_client
from support.api import PASSWORD, create_agent
from support.people import erase, wait_done
from support.stores import InsertLater, mongo_failing, sync_state

# the commands a block of this test's task sends (None: not counting)
_commands: contextvars.ContextVar[list[tuple[str, str]] | None] = contextvars.ContextVar(
    "analytics_batch_commands", default=None
)


class _Commands(monitoring.CommandListener):
    def started(self, event: monitoring.CommandStartedEvent) -> None:
        seen = _commands.get()
        if seen is not None:
            seen.append((event.command_name, str(event.command.get(event.command_name))))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


_LISTENER = _Commands()


@pytest.fixture
async def batched(
    settings: Settings,
) -> AsyncIterator[tuple[httpx.AsyncClient, Runtime]]:
    """The app with a flush interval no test waits for: only ``acks.flush()`` flushes."""
    if _LISTENER not in monitoring._LISTENERS.command_listeners:
        monitoring.register(_LISTENER)  # before the app's client is created
    async with app_client(
        settings, sync_ack_seconds=3600, erasure_interval_seconds=0.2, sync_relay_enabled=False
    ) as app:
        yield app


async def _first_turn(
    client: httpx.AsyncClient, headers: dict[str, str], agent_id: str
) -> dict[str, Any]:
    r = await client.post(
        "/api/chat/agent", json={"message": "ola", "agent_id": agent_id}, headers=headers
    )
    assert r.status_code == 200, r.text
    return dict(r.json())


async def _owner_and_first_turn(client: httpx.AsyncClient) -> tuple[Account, dict[str, Any]]:
    """A new person, an agent of theirs and their first turn's response."""
    owner = await account(client)
    agent = await create_agent(client, owner.headers)
    return owner, await _first_turn(client, owner.headers, agent["id"])


async def _runs(runtime: Runtime, **query: str) -> list[dict[str, Any]]:
    return await runtime.documents.analytics.find(query).to_list(None)


async def test_a_turn_sends_two_mongodb_commands_and_the_flush_one_insert(
    batched: tuple[httpx.AsyncClient, Runtime],
) -> None:
    client, runtime = batched
    owner, first = await _owner_and_first_turn(client)
    cid = first["conversation_id"]
    await runtime.acks.flush()

    seen: list[tuple[str, str]] = []
    token = _commands.set(seen)
    try:
        r = await client.post(
            "/api/chat/agent",
            json={"message": "de novo", "conversation_id": cid},
            headers=owner.headers,
        )
    finally:
        _commands.reset(token)
    assert r.status_code == 200, r.text
    assert seen == [("insert", "chat_messages"), ("update", "chat_conversations")]
    reply = r.json()["agent_message"]["id"]
    assert reply not in {d["_id"] for d in await _runs(runtime, conversation_id=cid)}

    flushed: list[tuple[str, str]] = []
    token = _commands.set(flushed)
    try:
        await runtime.acks.flush()
    finally:
        _commands.reset(token)
    assert flushed == [("insert", "chat_analytics")]
    runs = await _runs(runtime, conversation_id=cid)
    assert reply in {d["_id"] for d in runs}
    assert len(runs) == 2


async def test_the_run_reaches_chat_analytics_with_the_flush_and_only_then_is_acknowledged(
    batched: tuple[httpx.AsyncClient, Runtime],
) -> None:
    client, runtime = batched
    owner, body = await _owner_and_first_turn(client)
    cid = body["conversation_id"]
    assert await runtime.documents.messages.count_documents({"conversation_id": cid}) == 2
    assert await _runs(runtime, conversation_id=cid) == []
    assert runtime.acks.buffered == 1
    assert await sync_state(runtime, cid) == (0, 2)

    await runtime.acks.flush()
    runs = await _runs(runtime, conversation_id=cid)
    assert [d["_id"] for d in runs] == [body["agent_message"]["id"]]
    assert runs[0]["user_id"] == owner.id and runs[0]["status"] == "success"
    assert runtime.acks.buffered == 0
    assert await sync_state(runtime, cid) == (2, 2)


async def test_a_failed_analytics_insert_is_tried_again_by_the_next_flush(
    batched: tuple[httpx.AsyncClient, Runtime], secantus: SecantusServer
) -> None:
    client, runtime = batched
    _, body = await _owner_and_first_turn(client)
    cid = body["conversation_id"]
    async with mongo_failing(secantus.url, ("insert",)):
        await runtime.acks.flush()
    assert await _runs(runtime, conversation_id=cid) == []
    assert runtime.acks.buffered == 1  # kept for the next flush
    assert await sync_state(runtime, cid) == (0, 2)  # not acknowledged meanwhile

    await runtime.acks.flush()
    runs = await _runs(runtime, conversation_id=cid)
    assert [d["_id"] for d in runs] == [body["agent_message"]["id"]]
    assert runtime.acks.buffered == 0
    assert await sync_state(runtime, cid) == (2, 2)


async def test_a_failed_analytics_insert_leaves_the_turn_to_the_relay_meanwhile(
    batched: tuple[httpx.AsyncClient, Runtime], secantus: SecantusServer
) -> None:
    """Until a flush writes it, an un-acknowledged turn is the relay's too (as after a crash,
    which loses the buffer): whichever writes the run first, it is there once."""
    client, runtime = batched
    _, body = await _owner_and_first_turn(client)
    cid = body["conversation_id"]
    async with mongo_failing(secantus.url, ("insert",)):
        await runtime.acks.flush()
    assert await sync_state(runtime, cid) == (0, 2)

    result = await runtime.relay.run_once(now=datetime.now(UTC) + runtime.relay.grace)
    assert (result.advanced, result.messages) == (1, 2)
    runs = await _runs(runtime, conversation_id=cid)
    assert [d["_id"] for d in runs] == [body["agent_message"]["id"]]
    assert await sync_state(runtime, cid) == (2, 2)

    await runtime.acks.flush()  # the retry finds the run there: nothing twice
    assert [d["_id"] for d in await _runs(runtime, conversation_id=cid)] == [
        body["agent_message"]["id"]
    ]
    assert runtime.acks.buffered == 0
    assert await sync_state(runtime, cid) == (2, 2)


async def test_a_buffered_run_of_a_deleted_conversation_is_not_written(
    batched: tuple[httpx.AsyncClient, Runtime],
) -> None:
    client, runtime = batched
    owner, first = await _owner_and_first_turn(client)
    cid = first["conversation_id"]
    assert runtime.acks.buffered == 1
    r = await client.delete(f"/api/conversations/{cid}", headers=owner.headers)
    assert r.status_code == 204, r.text
    await runtime.acks.flush()
    assert await _runs(runtime, conversation_id=cid) == []
    assert await _runs(runtime, user_id=owner.id) == []


async def test_erasure_with_a_buffered_run_leaves_no_analytics_behind(
    batched: tuple[httpx.AsyncClient, Runtime],
) -> None:
    client, runtime = batched
    admin = await account(client, name="Admin")
    person = await account(client, name="Pia")
    agent = await create_agent(client, person.headers)
    await _first_turn(client, person.headers, agent["id"])
    await runtime.acks.flush()  # this run is in MongoDB...
    cid = (await _first_turn(client, person.headers, agent["id"]))["conversation_id"]
    assert runtime.acks.buffered == 1  # ...this one still in the buffer
    assert len(await _runs(runtime, user_id=person.id)) == 1

    r = await client.request(
        "DELETE", "/api/users/me", json={"password": PASSWORD}, headers=person.headers
    )
    assert r.status_code == 202, r.text
    await runtime.erasure.run_pending()
    done = await wait_done(client, admin.headers, r.json()["id"])
    assert done["status"] == "done"
    assert runtime.acks.buffered == 0  # the erasure flushed this server's buffer
    await runtime.acks.flush()  # and a later flush (the timer's) writes nothing of theirs
    assert await _runs(runtime, user_id=person.id) == []
    assert await _runs(runtime, conversation_id=cid) == []


def _other_server(runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> SyncAcks:
    """Another server's acks, whose flush inserts late: this app's turns are buffered there."""
    other = SyncAcks(runtime.engine, InsertLater(runtime.documents))
    monkeypatch.setattr(runtime.acks, "ack", other.ack)
    return other


async def test_a_conversation_deleted_between_the_flush_check_and_its_insert_keeps_no_run(
    batched: tuple[httpx.AsyncClient, Runtime], monkeypatch: pytest.MonkeyPatch
) -> None:
    client, runtime = batched
    other = _other_server(runtime, monkeypatch)
    owner = await account(client)
    agent = await create_agent(client, owner.headers)
    deleted = await _first_turn(client, owner.headers, agent["id"])
    kept = await _first_turn(client, owner.headers, agent["id"])
    cid, kept_cid = deleted["conversation_id"], kept["conversation_id"]
    assert (other.buffered, runtime.acks.buffered) == (2, 0)

    async def delete() -> None:  # SQL, then its MongoDB documents: before the late insert
        r = await client.delete(f"/api/conversations/{cid}", headers=owner.headers)
        assert r.status_code == 204, r.text

    assert isinstance(other.documents, InsertLater)
    other.documents.meanwhile = delete
    await other.flush()
    assert other.documents.meanwhile is None  # it ran
    assert await _runs(runtime, conversation_id=cid) == []
    runs = await _runs(runtime, conversation_id=kept_cid)
    assert [d["_id"] for d in runs] == [kept["agent_message"]["id"]]
    assert await sync_state(runtime, kept_cid) == (2, 2)


async def test_an_erasure_between_the_flush_check_and_its_insert_keeps_no_run(
    batched: tuple[httpx.AsyncClient, Runtime], monkeypatch: pytest.MonkeyPatch
) -> None:
    client, runtime = batched
    other = _other_server(runtime, monkeypatch)
    admin = await account(client, name="Admin")
    person, first = await _owner_and_first_turn(client)
    cid = first["conversation_id"]
    assert (other.buffered, runtime.acks.buffered) == (1, 0)

    async def erase() -> None:  # the whole erasure, its MongoDB deletes included
        r = await client.request(
            "DELETE", "/api/users/me", json={"password": PASSWORD}, headers=person.headers
        )
        assert r.status_code == 202, r.text
        await runtime.erasure.run_pending()
        assert (await wait_done(client, admin.headers, r.json()["id"]))["status"] == "done"

    assert isinstance(other.documents, InsertLater)
    other.documents.meanwhile = erase
    await other.flush()
    assert other.documents.meanwhile is None  # it ran
    assert await _runs(runtime, user_id=person.id) == []
    assert await _runs(runtime, conversation_id=cid) == []


async def _in_mongodb(runtime: Runtime, cid: str, owner: str) -> dict[str, int]:
    """What MongoDB holds of a conversation and of its owner (only what is not nothing)."""
    docs = runtime.documents
    counts = {
        "conversation": await docs.conversations.count_documents({"_id": cid}),
        "owner's conversations": await docs.conversations.count_documents({"user_id": owner}),
        "messages": await docs.messages.count_documents({"conversation_id": cid}),
        "owner's messages": await docs.messages.count_documents({"user_id": owner}),
        "runs": await docs.analytics.count_documents({"conversation_id": cid}),
        "owner's runs": await docs.analytics.count_documents({"user_id": owner}),
    }
    return {k: n for k, n in counts.items() if n}


async def _late_turn(
    runtime: Runtime,
    monkeypatch: pytest.MonkeyPatch,
    meanwhile: Callable[[UserRecord, uuid.UUID], Awaitable[None]],
) -> tuple[UserRecord, str]:
    """A person's conversation (its first turn flushed), then a turn whose MongoDB write comes
    after ``meanwhile(person, conversation)`` (a delete, an erasure) finished with both stores.
    The conversation's id."""
    await factories.user(runtime, name="Admin")  # the heir: the person is not the only admin
    person = await factories.user(runtime, name="Pia")
    agent = await factories.agent(runtime, person)
    first = await factories.turn(runtime, person, "Pia's secret", agent=agent)
    assert isinstance(first, TurnSucceeded), first
    await runtime.acks.flush()
    late = InsertLater(runtime.documents)
    monkeypatch.setattr(runtime.chat, "documents", late)
    late.meanwhile = lambda: meanwhile(person, first.conversation.id)
    outcome = await factories.turn(runtime, person, "again", conversation=first.conversation)
    assert isinstance(outcome, TurnSucceeded), outcome
    assert late.meanwhile is None  # it ran
    return person, str(first.conversation.id)


# what a late turn's write brought back into MongoDB: the conversation (an upsert), 2 messages
BROUGHT_BACK = {
    "conversation": 1,
    "owner's conversations": 1,
    "messages": 2,
    "owner's messages": 2,
}


async def test_a_turn_written_after_its_conversation_was_deleted_is_taken_back(
    batched: tuple[httpx.AsyncClient, Runtime], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A turn committed in SQL before its conversation's delete, its MongoDB write landing
    after the delete's: the next flush deletes what it wrote again (and writes no run)."""
    _, runtime = batched

    async def delete(person: UserRecord, conversation_id: uuid.UUID) -> None:
        await runtime.conversations.delete(person, conversation_id, client_ip=None)

    person, cid = await _late_turn(runtime, monkeypatch, delete)
    assert await _in_mongodb(runtime, cid, str(person.id)) == BROUGHT_BACK
    assert runtime.acks.buffered == 1  # its run: not written by the flush
    await runtime.acks.flush()
    assert await _in_mongodb(runtime, cid, str(person.id)) == {}
    assert runtime.acks.buffered == 0


async def test_a_turn_written_after_its_owner_was_erased_is_taken_back(
    batched: tuple[httpx.AsyncClient, Runtime], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same with a whole erasure (its flush, its MongoDB deletes by owner) between the
    turn's SQL commit and its MongoDB write: the next flush leaves nothing of the person."""
    _, runtime = batched

    async def erasure(person: UserRecord, conversation_id: uuid.UUID) -> None:
        await erase(runtime, person)

    person, cid = await _late_turn(runtime, monkeypatch, erasure)
    assert await _in_mongodb(runtime, cid, str(person.id)) == BROUGHT_BACK
    await runtime.acks.flush()
    assert await _in_mongodb(runtime, cid, str(person.id)) == {}


async def test_a_late_turn_write_that_failed_half_way_is_taken_back_too(
    batched: tuple[httpx.AsyncClient, Runtime],
    monkeypatch: pytest.MonkeyPatch,
    secantus: SecantusServer,
) -> None:
    """The late write's messages inserted, its conversation update failed: not acknowledged,
    still checked by the next flush, which deletes the messages of the deleted conversation."""
    _, runtime = batched
    async with contextlib.AsyncExitStack() as failing:

        async def delete(person: UserRecord, conversation_id: uuid.UUID) -> None:
            await runtime.conversations.delete(person, conversation_id, client_ip=None)
            await failing.enter_async_context(mongo_failing(secantus.url, ("update",)))

        person, cid = await _late_turn(runtime, monkeypatch, delete)
    assert await _in_mongodb(runtime, cid, str(person.id)) == {
        "messages": 2,
        "owner's messages": 2,
    }
    assert runtime.acks.buffered == 0
    await runtime.acks.flush()
    assert await _in_mongodb(runtime, cid, str(person.id)) == {}


async def test_a_first_turn_written_after_its_owner_was_erased_leaves_no_activity(
    batched: tuple[httpx.AsyncClient, Runtime], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A conversation's first turn committed in SQL before an erasure, its MongoDB write (with
    its ``conversation_created`` activity, naming the person) landing after the erasure's: the
    next flush takes the activity back with the conversation's documents."""
    _, runtime = batched
    await factories.user(runtime, name="Admin")  # the heir: the person is not the only admin
    person = await factories.user(runtime, name="Pia")
    agent = await factories.agent(runtime, person)
    late = InsertLater(runtime.documents)
    monkeypatch.setattr(runtime.chat, "documents", late)
    late.meanwhile = lambda: erase(runtime, person)
    outcome = await factories.turn(runtime, person, "Pia's secret", agent=agent)
    assert isinstance(outcome, TurnSucceeded), outcome
    assert late.meanwhile is None  # it ran
    cid, owner = str(outcome.conversation.id), str(person.id)
    activities = runtime.documents.activities
    assert await activities.count_documents({"user_id": owner}) == 1
    await runtime.acks.flush()
    assert await _in_mongodb(runtime, cid, owner) == {}
    assert await activities.count_documents({"user_id": owner}) == 0


async def test_a_later_turn_taken_back_keeps_the_conversation_created_activity(
    batched: tuple[httpx.AsyncClient, Runtime], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A second turn's write landing after its conversation's delete: the next flush takes back
    the conversation's documents, not its ``conversation_created`` activity (logged by the
    first turn, which a plain delete keeps too); only a first turn's take-back deletes it."""
    _, runtime = batched
    activities = runtime.documents.activities

    async def delete(person: UserRecord, conversation_id: uuid.UUID) -> None:
        await runtime.conversations.delete(person, conversation_id, client_ip=None)
        created = {"_id": f"conversation_created:{conversation_id}"}
        assert await activities.count_documents(created) == 1  # the delete kept it

    person, cid = await _late_turn(runtime, monkeypatch, delete)
    assert await _in_mongodb(runtime, cid, str(person.id)) == BROUGHT_BACK
    await runtime.acks.flush()
    assert await _in_mongodb(runtime, cid, str(person.id)) == {}
    assert await activities.count_documents({"_id": f"conversation_created:{cid}"}) == 1
