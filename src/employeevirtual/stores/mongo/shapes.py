"""The MongoDB documents of the chat: a message (``chat_messages`` and the conversation
document's window) and a whole conversation document, each built from its record alone so that
the turn, the relay and the reconciler write exactly the same thing."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from employeevirtual.stores.records import ConversationRecord, MessageRecord

__all__ = [
    "Document",
    "conversation_document",
    "message_document",
    "message_from_document",
    "rag_context",
    "window_entry",
]

Document = dict[str, Any]


def message_document(message: MessageRecord) -> Document:
    """The seed's message shape, plus ``seq`` and ``conversation_id`` (and ``is_edited``,
    ``edited_at`` on an edited user message)."""
    doc: Document = {
        "_id": str(message.id),
        "id": str(message.id),
        "conversation_id": str(message.conversation_id),
        "seq": message.seq,
        "content": message.content,
        "message_type": message.message_type,
        "user_id": str(message.user_id),
        "agent_id": str(message.agent_id) if message.agent_id else None,
        "metadata": {**message.metadata, "timestamp": message.created_at},
        "timestamp": message.created_at,
    }
    if message.is_edited:
        doc["is_edited"] = True
        doc["edited_at"] = message.edited_at
    return doc


def message_from_document(doc: Document) -> MessageRecord:
    """``message_document`` read back."""
    metadata = dict(doc.get("metadata") or {})
    metadata.pop("timestamp", None)
    timestamp: datetime = doc["timestamp"]
    if timestamp.tzinfo is None:
        timestamp = timestamp.replace(tzinfo=UTC)
    return MessageRecord(
        id=UUID(doc["_id"]),
        conversation_id=UUID(doc["conversation_id"]),
        seq=doc["seq"],
        user_id=UUID(doc["user_id"]),
        agent_id=UUID(doc["agent_id"]) if doc.get("agent_id") else None,
        content=doc["content"],
        message_type=doc["message_type"],
        metadata=metadata,
        created_at=timestamp,
        is_edited=bool(doc.get("is_edited")),
        edited_at=_aware(doc.get("edited_at")),
        feedback=doc.get("feedback"),
    )


def _aware(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def rag_context(docs: Sequence[Document]) -> Document | None:
    """The conversation document's ``context.rag_context``: the sources of the newest reply
    among ``docs`` that used knowledge (None when none did)."""
    for doc in reversed(docs):
        sources = (doc.get("metadata") or {}).get("sources")
        if doc.get("message_type") == "agent" and sources:
            return {
                "message_id": doc["_id"],
                "seq": doc["seq"],
                "queries": [
                    s.get("query") for s in doc["metadata"].get("knowledge_searches") or []
                ],
                "sources": sources,
                "updated_at": doc["timestamp"],
            }
    return None


def window_entry(doc: Document) -> Document:
    return {k: v for k, v in doc.items() if k not in ("_id", "conversation_id", "timestamp")}


def conversation_document(
    conversation: ConversationRecord,
    window: Sequence[MessageRecord],
    *,
    size: int,
    context: Document | None = None,
) -> Document:
    """The whole conversation document as SQL holds it: its newest ``size`` messages of
    ``window`` and the totals (a rebuild's or a repair's snapshot). ``context``: more of
    ``context`` kept in SQL (the summary, ``conversation_state``)."""
    cid = str(conversation.id)
    docs = [message_document(m) for m in window[-size:]]
    rag = rag_context(docs)
    kept: Document = {**(context or {})}
    if conversation.metadata.get("session_data"):
        kept["session_data"] = conversation.metadata["session_data"]
    if rag is not None:
        kept["rag_context"] = rag
    return {
        "_id": cid,
        "conversation_id": cid,
        "user_id": str(conversation.user_id),
        "agent_id": str(conversation.agent_id),
        "title": conversation.title,
        "messages": [window_entry(d) for d in docs],
        "context": kept,
        "metadata": {
            "created_at": conversation.created_at,
            "last_activity": conversation.last_message_at or conversation.created_at,
            "message_count": conversation.message_count,
            "status": conversation.status,
            "total_tokens": conversation.total_tokens,
            "total_cost": float(conversation.total_cost),
            "total_response_time": float(conversation.total_response_time),
            "agent_runs": conversation.agent_runs,
            "avg_response_time": conversation.avg_response_time,
            "last_seq": conversation.message_count,
        },
    }
