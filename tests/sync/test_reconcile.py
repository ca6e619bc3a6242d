"""The reconciler finds every kind of drift between the stores and repairs it from SQL."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
from typer.testing import CliRunner

from employeevirtual.runtime import Runtime
from employeevirtual.stores.mongo.secantus import SecantusServer
from employeevirtual.stores.records import AgentRecord, UserRecord
from employeevirtual.sync.cli import sync_app
from employeevirtual.sync.reconcile import Reconciler
from support import factories
from support.people import erase
from support.stores import InsertLater, mongo_failing, mongo_messages, sql_messages, sync_state


async def _conversation(runtime: Runtime, owner: UserRecord, agent: AgentRecord) -> str:
    """Two turns (four messages), made through the chat service."""
    return str((await factories.conversation(runtime, owner, agent, ["a", "b"])).id)


async def test_a_repair_overtaken_by_an_erasure_leaves_no_message_behind(
    runtime: Runtime,
) -> None:
    """The repair read messages MongoDB lost; the owner's erasure then removed the conversation
    from both stores before the repair inserted them: they are deleted again (the quick orphan
    scan, which looks at conversation documents only, would not find them)."""
    await factories.user(runtime, name="Admin")  # the heir: the person is not the only admin
    person = await factories.user(runtime, name="Pia")
    cid = await _conversation(runtime, person, await factories.agent(runtime, person))
    await runtime.acks.flush()
    await runtime.documents.messages.delete_many({"conversation_id": cid})  # lost, say
    documents = InsertLater(runtime.documents)
    documents.meanwhile = lambda: erase(runtime, person)
    report = await Reconciler(runtime.engine, documents, grace_seconds=0).run(
        repair=True, deep=False
    )
    assert documents.meanwhile is None  # the erasure ran between the comparison and the insert
    assert [(d.conversation_id, d.kind, d.repaired) for d in report.drifts] == [
        (cid, "missing_messages", True)
    ]
    assert await mongo_messages(runtime, cid) == {}
    assert await runtime.documents.messages.count_documents({"user_id": str(person.id)}) == 0


async def test_check_finds_every_drift_and_repair_makes_the_stores_equal(
    runtime: Runtime, secantus: SecantusServer
) -> None:
    owner = await factories.user(runtime)
    agent = await factories.agent(runtime, owner)
    lost, extra, counters, no_doc, moved = [
        await _conversation(runtime, owner, agent) for _ in range(5)
    ]
    await runtime.acks.flush()  # the five are synced before MongoDB fails
    async with mongo_failing(secantus.url):
        unsynced = await _conversation(runtime, owner, agent)
    await runtime.acks.flush()
    clean = await runtime.reconciler.run(repair=False)
    assert {(d.conversation_id, d.kind) for d in clean.drifts} == {
        (unsynced, "missing_messages"),
        (unsynced, "missing_document"),
    }

    docs = runtime.documents
    await docs.messages.delete_one({"conversation_id": lost, "seq": 3})
    stray: dict[str, Any] = {"_id": str(uuid.uuid4()), "conversation_id": extra, "seq": 99}
    await docs.messages.insert_one(stray)
    await docs.conversations.update_one(
        {"_id": counters}, {"$inc": {"metadata.message_count": 2, "metadata.total_tokens": 7}}
    )
    await docs.conversations.delete_one({"_id": no_doc})
    first = await docs.messages.find_one({"conversation_id": moved, "seq": 1})
    assert first is not None
    await docs.messages.delete_one({"_id": first["_id"]})
    await docs.messages.insert_one({**first, "seq": 50})
    orphan = str(uuid.uuid4())
    await docs.conversations.insert_one({"_id": orphan, "metadata": {"last_seq": 2}})
    await docs.messages.insert_one({"_id": str(uuid.uuid4()), "conversation_id": orphan, "seq": 1})

    report = await runtime.reconciler.run(repair=False)
    found = {(d.conversation_id, d.kind) for d in report.drifts}
    assert found == {
        (lost, "missing_messages"),
        (extra, "extra_messages"),
        (counters, "counters"),
        (no_doc, "missing_document"),
        (moved, "seq_mismatch"),
        (unsynced, "missing_messages"),
        (unsynced, "missing_document"),
        (orphan, "orphan"),
    }
    assert not any(d.repaired for d in report.drifts)
    # the quick round (counts first) finds the same
    quick = await runtime.reconciler.run(repair=False, deep=False)
    assert {(d.conversation_id, d.kind) for d in quick.drifts} == found

    repaired = await runtime.reconciler.run(repair=True)
    assert {(d.conversation_id, d.kind) for d in repaired.drifts} == found
    assert all(d.repaired for d in repaired.drifts)
    after = await runtime.reconciler.run(repair=False)
    assert after.clean, after.drifts
    for cid in (lost, extra, counters, no_doc, moved, unsynced):
        assert await mongo_messages(runtime, cid) == await sql_messages(runtime, cid)
        assert await sync_state(runtime, cid) == (4, 4)
        doc = await docs.conversations.find_one({"_id": cid})
        assert doc is not None
        assert doc["metadata"]["message_count"] == 4
    assert await docs.conversations.find_one({"_id": orphan}) is None
    assert await docs.messages.count_documents({"conversation_id": orphan}) == 0


async def test_deleted_conversation_left_in_mongodb_is_an_orphan(
    client: httpx.AsyncClient, runtime: Runtime, secantus: SecantusServer
) -> None:
    owner = await factories.user(runtime)
    agent = await factories.agent(runtime, owner)
    cid = await _conversation(runtime, owner, agent)
    async with mongo_failing(secantus.url, ("delete",)):
        r = await client.delete(
            f"/api/conversations/{cid}", headers=factories.headers(runtime, owner)
        )
        assert r.status_code == 204
    assert await runtime.documents.messages.count_documents({"conversation_id": cid}) == 4
    report = await runtime.reconciler.run(repair=True, deep=False)
    assert [(d.conversation_id, d.kind, d.repaired) for d in report.drifts] == [
        (cid, "orphan", True)
    ]
    assert await runtime.documents.messages.count_documents({"conversation_id": cid}) == 0


async def test_a_run_left_only_in_chat_analytics_is_an_orphan_of_the_deep_check(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    """A run batched with the acks can be inserted after its conversation was deleted (the
    flush checked SQL just before): the deep check finds it and the repair removes it."""
    owner = await factories.user(runtime)
    agent = await factories.agent(runtime, owner)
    cid = await _conversation(runtime, owner, agent)
    r = await client.delete(f"/api/conversations/{cid}", headers=factories.headers(runtime, owner))
    assert r.status_code == 204
    late = {"_id": str(uuid.uuid4()), "conversation_id": cid, "user_id": str(owner.id)}
    await runtime.documents.analytics.insert_one(late)

    quick = await runtime.reconciler.run(repair=False, deep=False)
    assert quick.clean  # not in chat_conversations or chat_messages: only the deep scan sees it
    report = await runtime.reconciler.run(repair=True, deep=True)
    assert [(d.conversation_id, d.kind, d.repaired) for d in report.drifts] == [
        (cid, "orphan", True)
    ]
    assert await runtime.documents.analytics.count_documents({"conversation_id": cid}) == 0


async def test_sync_cli_check_prints_the_drift_and_repair_fixes_it(
    runtime: Runtime, cli_env: None
) -> None:
    owner = await factories.user(runtime)
    agent = await factories.agent(runtime, owner)
    cid = await _conversation(runtime, owner, agent)
    await runtime.documents.messages.delete_one({"conversation_id": cid, "seq": 2})
    runner = CliRunner()
    # the CLI runs its own event loop: off this test's loop, in a thread
    result = await asyncio.to_thread(runner.invoke, sync_app, ["check"], env={"COLUMNS": "200"})
    assert result.exit_code == 1, result.output
    assert cid in result.output
    assert "missing_messages" in result.output
    result = await asyncio.to_thread(runner.invoke, sync_app, ["repair"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    result = await asyncio.to_thread(runner.invoke, sync_app, ["check"])
    assert result.exit_code == 0, result.output
    assert "stores agree" in result.output
    assert await mongo_messages(runtime, cid) == await sql_messages(runtime, cid)


async def test_sync_cli_run_once_replays_what_mongodb_missed(
    runtime: Runtime, secantus: SecantusServer, cli_env: None
) -> None:
    owner = await factories.user(runtime)
    agent = await factories.agent(runtime, owner)
    async with mongo_failing(secantus.url):
        cid = await _conversation(runtime, owner, agent)
    await runtime.acks.flush()
    assert await sync_state(runtime, cid) == (0, 4)
    result = await asyncio.to_thread(CliRunner().invoke, sync_app, ["run", "--once"])
    assert result.exit_code == 0, result.output
    assert "0 conversation(s) still behind" in result.output
    assert await sync_state(runtime, cid) == (4, 4)
    assert await mongo_messages(runtime, cid) == await sql_messages(runtime, cid)
