"""Conversations that already hold N messages, written in bulk straight into both stores.

SQL: one multi-row INSERT of the conversations and ``executemany`` of their messages (chunked);
MongoDB: ``insert_many`` of the messages and of the conversation documents (window and counters
as a turn would have left them). ``synced_seq = message_count``: nothing owed to the relay.
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

from employeevirtual.stores.mongo.documents import DocumentStore
from employeevirtual.stores.mongo.shapes import message_document
from employeevirtual.stores.records import ConversationRecord, MessageRecord
from employeevirtual.stores.sql.tables import conversations, messages

__all__ = ["SeedSpec", "seed_conversations"]

_CHUNK = 5_000


@dataclass(frozen=True, slots=True)
class SeedSpec:
    user_id: UUID
    agent_id: UUID
    agent_name: str
    messages: int  # per conversation, alternating user / agent
    count: int = 1  # conversations


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


def _sql_message(m: MessageRecord) -> dict[str, Any]:
    return {
        "id": m.id,
        "conversation_id": m.conversation_id,
        "seq": m.seq,
        "user_id": m.user_id,
        "agent_id": m.agent_id,
        "content": m.content,
        "message_type": m.message_type,
        "message_metadata": m.metadata,
        "created_at": m.created_at,
        "is_edited": False,
    }


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
    batch: list[MessageRecord] = []
    docs = []
    for record in records:
        seeded = _messages(record, spec.messages, start)
        docs.append(documents.conversation_document(record, seeded[-documents.window :]))
        batch.extend(seeded)
        if len(batch) >= _CHUNK:
            await _flush(engine, documents, batch)
            batch = []
    if batch:
        await _flush(engine, documents, batch)
    for i in range(0, len(docs), 1000):
        await _insert(documents.conversations, docs[i : i + 1000])
    return [r.id for r in records]


async def _flush(engine: AsyncEngine, documents: DocumentStore, batch: list[MessageRecord]) -> None:
    async with engine.begin() as conn:
        await conn.execute(insert(messages), [_sql_message(m) for m in batch])
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
