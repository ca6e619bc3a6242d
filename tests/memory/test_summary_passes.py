"""The background summary's passes, on a real runtime: messages an edit or a regenerated answer
replaced never reach the summary (even when what replaced them lies past the batch), a long
catch-up reads a bounded number of messages per pass, going on in later passes until it has
caught up, and turns committed while a pass runs are folded in after it without another turn."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart
from pydantic_ai.models.function import AgentInfo, FunctionModel
from sqlalchemy import select, update

from employeevirtual.memory.summaries import SummaryWorker
from employeevirtual.runtime import Runtime
from employeevirtual.stores.sql.engine import read_connection
from employeevirtual.stores.sql.memory import MemoryReader
from employeevirtual.stores.sql.summaries import SummaryRecord
from employeevirtual.stores.sql.tables import conversation_summaries, conversations
from employeevirtual.stores.supersede import LOOKAHEAD
from support import factories
from support.memory import PROBE_MODEL, install_probe, seed_conversation


def _filler(seq: int) -> str:
    if seq % 2 == 1:
        return f"My note number {seq} is about the garden on street {seq}."
    return f"I have noted item {seq} for you."


async def _seeded(
    runtime: Runtime,
    contents: list[str],
    supersedes: dict[int, list[int]] | None = None,
) -> uuid.UUID:
    install_probe(runtime)
    owner = await factories.user(runtime)
    agent = await factories.agent(runtime, owner, model=PROBE_MODEL)
    return await seed_conversation(
        runtime,
        user_id=owner.id,
        agent_id=agent.id,
        contents=contents,
        supersedes=supersedes,
    )


def _worker(runtime: Runtime) -> SummaryWorker:
    assert runtime.memory is not None
    return runtime.memory.worker


async def _summary(runtime: Runtime, cid: uuid.UUID) -> SummaryRecord:
    async with read_connection(runtime.engine) as conn:
        current = await MemoryReader(conn).current_summary(cid)
    assert current is not None, "no summary was written"
    return current


async def test_the_summary_leaves_out_messages_an_edit_replaced(
    runtime: Runtime,
) -> None:
    contents = [_filler(seq) for seq in range(1, 61)]
    contents[4] = "My locker code is 1111 and the locker is on floor 2."  # seq 5
    contents[5] = "Noted: your locker code is 1111, floor 2."  # seq 6
    contents[6] = "My locker code is 4417 and the locker is on floor 3."  # seq 7 edits 5
    contents[7] = "Noted: your locker code is 4417, floor 3."  # seq 8 answers it instead of 6
    cid = await _seeded(runtime, contents, supersedes={7: [5], 8: [6]})
    worker = _worker(runtime)
    # the first batch ends at seq 6: what replaces 5 and 6 lies just past it
    worker.batch = 6
    worker.every = 1

    assert await worker.update(cid, "offline") is False
    summary = await _summary(runtime, cid)
    assert summary.covered_seq == 60 - worker.window
    assert "4417" in summary.content, summary.content
    assert "1111" not in summary.content, summary.content
    # the two replaced messages are not counted as folded in
    assert worker.stats.messages == summary.covered_seq - 2


async def test_a_long_catch_up_reads_a_bounded_number_of_messages_per_pass(
    runtime: Runtime,
) -> None:
    cid = await _seeded(runtime, [_filler(seq) for seq in range(1, 301)])
    worker = _worker(runtime)
    worker.batch = 25
    worker.pass_messages = 60
    edge = 300 - worker.window

    # one pass stops at its bound and says more is due
    assert await worker.update(cid, "offline") is True
    first = await _summary(runtime, cid)
    assert worker.stats.passes == 1
    assert 0 < worker.stats.read <= worker.pass_messages
    assert 0 < first.covered_seq <= worker.pass_messages - LOOKAHEAD
    assert first.covered_seq < edge

    # started as after a turn, the catch-up goes on pass after pass until it is done
    worker.committed(cid, 300, PROBE_MODEL)
    await worker.drain()
    done = await _summary(runtime, cid)
    assert done.covered_seq == edge
    assert worker.stats.failures == 0
    passes = worker.stats.passes
    assert passes >= 1 + (edge - first.covered_seq) // worker.pass_messages + 1
    assert worker.stats.read <= passes * worker.pass_messages
    assert done.model == "offline"  # the operator's summary model, not the agent's
    assert "garden" in done.content


async def test_turns_committed_during_a_pass_are_summarized_after_it(runtime: Runtime) -> None:
    cid = await _seeded(runtime, [_filler(seq) for seq in range(1, 81)])
    worker = _worker(runtime)
    worker.every = 10
    first_count = worker.window + worker.every
    waiting, released = asyncio.Event(), asyncio.Event()

    async def gated(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        waiting.set()
        await released.wait()
        return ModelResponse(parts=[TextPart("the summary")])

    runtime.models.override("test:gated-summary", FunctionModel(gated))
    worker.summarizer.model = "test:gated-summary"
    async with runtime.engine.begin() as conn:
        await conn.execute(
            update(conversations).where(conversations.c.id == cid).values(message_count=first_count)
        )
    worker.committed(cid, first_count, PROBE_MODEL)
    await asyncio.wait_for(waiting.wait(), 10)  # the pass read the state, waits for its model

    # a turn commits while the pass runs: the pass does not see it, its end does
    async with runtime.engine.begin() as conn:
        await conn.execute(
            update(conversations).where(conversations.c.id == cid).values(message_count=80)
        )
    worker.committed(cid, 80, PROBE_MODEL)
    released.set()
    await worker.drain()

    summary = await _summary(runtime, cid)
    assert summary.covered_seq == 80 - worker.window
    assert summary.version == 2
    assert worker.stats.failures == 0


async def test_only_the_newest_versions_are_kept(runtime: Runtime) -> None:
    cid = await _seeded(runtime, [_filler(seq) for seq in range(1, 81)])
    worker = _worker(runtime)
    worker.every = 1
    worker.batch = (80 - worker.window) // 3
    worker.keep = 2

    assert await worker.update(cid, "offline") is False
    assert worker.stats.versions == 3  # the first one past ``keep`` prunes
    await runtime.acks.flush()  # the copies' acknowledgements are batched with the turns'
    s = conversation_summaries.c
    async with read_connection(runtime.engine) as conn:
        rows = await conn.execute(
            select(s.version, s.synced_at).where(s.conversation_id == cid).order_by(s.version)
        )
        kept = [(r.version, r.synced_at is not None) for r in rows]
    assert kept == [(worker.stats.versions - 1, True), (worker.stats.versions, True)]


async def _synced(runtime: Runtime, cid: uuid.UUID) -> list[bool]:
    s = conversation_summaries.c
    async with read_connection(runtime.engine) as conn:
        rows = await conn.execute(
            select(s.synced_at).where(s.conversation_id == cid).order_by(s.version)
        )
        return [r.synced_at is not None for r in rows]


async def _copied_version(runtime: Runtime, cid: uuid.UUID) -> int | None:
    doc = await runtime.documents.conversations.find_one({"_id": str(cid)})
    assert doc is not None
    state = doc.get("context", {}).get("conversation_state")
    return None if state is None else int(state["version"])


async def test_a_summary_copy_is_acknowledged_by_the_batched_flush_or_replayed(
    runtime: Runtime,
) -> None:
    flushed = await _seeded(runtime, [_filler(seq) for seq in range(1, 61)])
    lost = await _seeded(runtime, [_filler(seq) for seq in range(1, 61)])
    worker = _worker(runtime)
    await runtime.acks.stop()  # no background flush: the test says when (stopping twice is fine)

    # the copy is written at once; that it landed waits for the acks' next flush
    assert await worker.update(flushed, "offline") is False
    assert await _copied_version(runtime, flushed) == 1
    assert await _synced(runtime, flushed) == [False]
    await runtime.acks.flush()
    assert await _synced(runtime, flushed) == [True]

    # an ack lost before its flush (a crash): the relay leaves the version its grace (the
    # worker's own ack may be on its way), then replays the copy (idempotent) and records it
    assert await worker.update(lost, "offline") is False
    runtime.acks._summaries.clear()
    await runtime.acks.flush()
    assert await _synced(runtime, lost) == [False]
    await runtime.relay.run_once()
    assert await _synced(runtime, lost) == [False]
    await runtime.relay.run_once(now=datetime.now(UTC) + runtime.relay.grace)
    assert await _synced(runtime, lost) == [True]
    assert await _copied_version(runtime, lost) == 1
    assert worker.stats.failures == 0
