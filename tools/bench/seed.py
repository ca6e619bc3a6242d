"""Conversations that already hold N messages, written in bulk straight into both stores.

SQL: one multi-row INSERT of the conversations and ``executemany`` of their messages (chunked);
MongoDB: ``insert_many`` of the messages and of the conversation documents (window and counters
as a turn would have left them). ``synced_seq = message_count``: nothing owed to the relay.

With ``SeedSpec.summaries``, a conversation is also left in the steady state a real one of
that length is in when its agent keeps memory: the rolling summary (``memory.summaries``)
covers what the background passes would have folded in, turn after turn, up to now (its kept
versions in ``conversation_summaries``, synced; its current one as the conversation document's
``context.conversation_state``). Without it a long seeded conversation has a summary backlog
no real conversation has, and its first turns start a catch-up.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

from pymongo.errors import BulkWriteError
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from employeevirtual.settings import Settings
from employeevirtual.stores.mongo.documents import DocumentStore
from employeevirtual.stores.mongo.memory import conversation_state
from employeevirtual.stores.mongo.shapes import message_document
from employeevirtual.stores.records import ConversationRecord, MessageRecord
from employeevirtual.stores.sql.messages import message_parameters
from employeevirtual.stores.sql.summaries import SummaryRecord
from employeevirtual.stores.sql.tables import conversation_summaries, conversations, messages
from tools.bench.server import INSTANT_ANSWER, INSTANT_MODEL, SLOW_ANSWER, SLOW_MODEL

__all__ = ["SeedSpec", "SummarySeed", "seed_conversations", "seed_load", "steady_summaries"]

_CHUNK = 5_000


@dataclass(frozen=True, slots=True)
class SummarySeed:
    """The summary settings of the server the conversations are seeded for
    (``memory.setup.open_memory``), and the text its summarizer writes: with the bench's
    FunctionModels that is the model's one fixed answer, whatever it is asked."""

    window: int  # EV_AGENT_CONTEXT_MESSAGES
    every: int  # EV_MEMORY_SUMMARY_EVERY
    batch: int  # EV_MEMORY_SUMMARY_BATCH
    keep: int  # EV_MEMORY_SUMMARY_VERSIONS
    model: str  # the summarizer's model (the agent's own unless EV_MEMORY_SUMMARY_MODEL)
    content: str

    @classmethod
    def for_agent(cls, settings: Settings, agent_model: str, content: str) -> SummarySeed | None:
        """None when the server keeps no memory (nothing to seed)."""
        if not settings.memory_enabled:
            return None
        return cls(
            window=settings.agent_context_messages,
            every=settings.memory_summary_every,
            batch=settings.memory_summary_batch,
            keep=settings.memory_summary_versions,
            model=settings.memory_summary_model or agent_model,
            content=content,
        )


def steady_summaries(seed: SummarySeed, messages: int) -> list[tuple[int, int]]:
    """(covered_seq, messages folded in) of every summary version a conversation that grew a
    turn (two messages) at a time to ``messages`` has had, oldest first: after each turn's
    commit, when ``every`` messages past the summary have left the context window, a pass
    folds them in, ``batch`` at a time (``SummaryWorker.due`` and ``_step``)."""
    versions: list[tuple[int, int]] = []
    covered = 0
    for count in range(2, messages + 1, 2):
        edge = count - seed.window
        while edge - covered >= seed.every:
            span = min(edge - covered, seed.batch)
            covered += span
            versions.append((covered, span))
    return versions


@dataclass(frozen=True, slots=True)
class SeedSpec:
    user_id: UUID
    agent_id: UUID
    agent_name: str
    messages: int  # per conversation, alternating user / agent
    count: int = 1  # conversations
    summaries: SummarySeed | None = None  # None: no summary (a backlog, for a catch-up)


def _messages(conversation: ConversationRecord, n: int, start: datetime) -> list[MessageRecord]:
    out = []
    for seq in range(1, n + 1):
        is_user = seq % 2 == 1
        out.append(
            MessageRecord(
                id=uuid.uuid4(),
                conversation_id=conversation.id,
                seq=seq,
                user_id=conversation.user_id,
                agent_id=None if is_user else conversation.agent_id,
                content=(f"question {seq}: what about item {seq}?" if is_user else f"answer {seq}"),
                message_type="user" if is_user else "agent",
                metadata={} if is_user else {"model_used": "seed", "tokens_used": 10},
                created_at=start + timedelta(milliseconds=seq),
            )
        )
    return out


async def seed_conversations(
    engine: AsyncEngine, documents: DocumentStore, spec: SeedSpec
) -> list[UUID]:
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)
    records: list[ConversationRecord] = []
    rows: list[dict[str, Any]] = []
    for _ in range(spec.count):
        now = start + timedelta(milliseconds=spec.messages)
        record = ConversationRecord(
            id=uuid.uuid4(),
            user_id=spec.user_id,
            agent_id=spec.agent_id,
            title=f"Conversa com {spec.agent_name}"[:200],
            status="active",
            session_id=None,
            metadata={},
            created_at=start,
            updated_at=now,
            last_message_at=now,
            message_count=spec.messages,
            total_tokens=10 * (spec.messages // 2),
            total_cost=Decimal(0),
            total_response_time=Decimal(0),
            agent_runs=spec.messages // 2,
            synced_seq=spec.messages,
            last_error=None,
        )
        records.append(record)
        rows.append(
            {
                "id": record.id,
                "user_id": record.user_id,
                "agent_id": record.agent_id,
                "title": record.title,
                "status": record.status,
                "metadata": {},
                "created_at": record.created_at,
                "updated_at": record.updated_at,
                "last_message_at": record.last_message_at,
                "message_count": record.message_count,
                "total_tokens": record.total_tokens,
                "total_cost": record.total_cost,
                "total_response_time": record.total_response_time,
                "agent_runs": record.agent_runs,
                "synced_seq": record.synced_seq,
            }
        )
    async with engine.begin() as conn:
        await conn.execute(insert(conversations), rows)
    summaries = [summary for record in records for summary in _summaries(record, spec)]
    if summaries:
        async with engine.begin() as conn:
            for i in range(0, len(summaries), 1000):
                await conn.execute(insert(conversation_summaries), summaries[i : i + 1000])
    current = {s["conversation_id"]: s for s in summaries}  # the last one is the newest
    batch: list[MessageRecord] = []
    docs = []
    for record in records:
        seeded = _messages(record, spec.messages, start)
        context = None
        if record.id in current:
            row = current[record.id]
            summary = SummaryRecord(**{k: row[k] for k in SummaryRecord.__slots__})
            context = {"conversation_state": conversation_state(summary)}
        docs.append(
            documents.conversation_document(record, seeded[-documents.window :], context=context)
        )
        batch.extend(seeded)
        if len(batch) >= _CHUNK:
            await _flush(engine, documents, batch)
            batch = []
    if batch:
        await _flush(engine, documents, batch)
    for i in range(0, len(docs), 1000):
        await _insert(documents.conversations, docs[i : i + 1000])
    return [r.id for r in records]


def _summaries(record: ConversationRecord, spec: SeedSpec) -> list[dict[str, Any]]:
    """The kept summary versions of a steady conversation, as rows (synced: MongoDB's
    conversation document is written with the current one)."""
    if spec.summaries is None:
        return []
    versions = steady_summaries(spec.summaries, spec.messages)
    now = record.last_message_at or record.created_at
    first = len(versions) - spec.summaries.keep
    return [
        {
            "conversation_id": record.id,
            "version": version,
            "user_id": record.user_id,
            "covered_seq": covered,
            "content": spec.summaries.content,
            "model": spec.summaries.model,
            "messages": folded,
            "created_at": now,
            "synced_at": now,
        }
        for version, (covered, folded) in enumerate(versions, start=1)
        if version > first
    ]


async def _flush(engine: AsyncEngine, documents: DocumentStore, batch: list[MessageRecord]) -> None:
    async with engine.begin() as conn:
        await conn.execute(insert(messages), [message_parameters(m) for m in batch])
    await _insert(documents.messages, [message_document(m) for m in batch])


async def _insert(collection: Any, docs: list[dict[str, Any]]) -> None:
    """``insert_many`` that lets documents already there be: the running server's loss check
    may copy a seeded conversation from SQL before the seed writes it to MongoDB (the same
    documents, since both are built from the same rows)."""
    try:
        await collection.insert_many(docs, ordered=False)
    except BulkWriteError as exc:
        if any(e.get("code") != 11000 for e in exc.details.get("writeErrors", [])):
            raise


async def seed_load(
    engine: AsyncEngine,
    documents: DocumentStore,
    settings: Settings,
    user_id: UUID,
    instant: tuple[UUID, int],
    slow: tuple[UUID, int],
) -> tuple[list[UUID], list[UUID]]:
    """The conversations of the concurrency and workers steps, 10 messages each, in the
    summaries' steady state: ``slow`` = (the slow agent, how many), then ``instant`` likewise.
    Returns (slow ones, instant ones)."""
    (slow_agent, slow_count), (instant_agent, instant_count) = slow, instant
    many = await seed_conversations(
        engine,
        documents,
        SeedSpec(
            user_id,
            slow_agent,
            "Slow",
            10,
            count=slow_count,
            summaries=SummarySeed.for_agent(settings, SLOW_MODEL, SLOW_ANSWER),
        ),
    )
    quick = await seed_conversations(
        engine,
        documents,
        SeedSpec(
            user_id,
            instant_agent,
            "Instant",
            10,
            count=instant_count,
            summaries=SummarySeed.for_agent(settings, INSTANT_MODEL, INSTANT_ANSWER),
        ),
    )
    return many, quick
