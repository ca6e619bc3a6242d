"""MongoDB side of the chat: idempotent writers and bounded readers.

Every write is safe to replay: documents carry ids fixed before the first attempt, and the
conversation document's update is guarded by the turn's first ``seq``. Nothing here relies on
the driver's retryable writes (Cosmos DB runs with ``retrywrites=false``).
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import (
    BulkWriteError,
    ConnectionFailure,
    DuplicateKeyError,
    NetworkTimeout,
    WaitQueueTimeoutError,
)

from employeevirtual.stores.mongo.breaker import CircuitBreaker, MongoUnavailable
from employeevirtual.stores.mongo.collections import Collections
from employeevirtual.stores.records import ConversationRecord, MessageRecord, TurnUsage

__all__ = [
    "DocumentStore",
    "analytics_document",
    "delegation_documents",
    "message_document",
    "message_from_document",
    "rag_context",
]

Document = dict[str, Any]
DUPLICATE_KEY = 11000


def message_document(message: MessageRecord) -> Document:
    """The seed's message shape, plus ``seq`` and ``conversation_id`` (and ``is_edited``,
    ``edited_at`` on an edited user message)."""
    doc = _message_document(message)
    if message.is_edited:
        doc["is_edited"] = True
        doc["edited_at"] = message.edited_at
    return doc


def _message_document(message: MessageRecord) -> Document:
    return {
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


def analytics_document(reply: MessageRecord) -> Document | None:
    """The ``chat_analytics`` document of one agent run, derived from its reply alone (so the
    relay rebuilds exactly what the turn would have written); None for a user's message."""
    if reply.message_type not in ("agent", "error"):
        return None
    meta = reply.metadata
    # the tokens and cost of delegated runs are attributed to their agents (their own
    # documents, ``delegation_documents``): this run's document keeps the rest
    delegated = [d for d in meta.get("delegations") or [] if isinstance(d, dict)]
    return {
        "_id": str(reply.id),  # one run, one document, whatever the replays
        "conversation_id": str(reply.conversation_id),
        "user_id": str(reply.user_id),
        "agent_id": str(reply.agent_id) if reply.agent_id else None,
        "message_id": str(reply.id),
        "model": meta.get("model_used"),
        "input_tokens": (meta.get("input_tokens") or 0)
        - sum(d.get("input_tokens") or 0 for d in delegated),
        "output_tokens": (meta.get("output_tokens") or 0)
        - sum(d.get("output_tokens") or 0 for d in delegated),
        "cost": _own_cost(meta.get("cost"), delegated),
        "execution_time": meta.get("execution_time"),
        "tool_calls": meta.get("tool_calls") or 0,
        "delegated_runs": meta.get("delegated_runs") or 0,
        "status": "success" if reply.message_type == "agent" else meta.get("error"),
        "request_id": meta.get("request_id"),
        "timestamp": reply.created_at,
    }


def _own_cost(cost: float | None, delegated: list[Document]) -> float | None:
    if cost is None or not delegated:
        return cost
    return cost - sum(d.get("cost") or 0.0 for d in delegated)


def delegation_documents(reply: MessageRecord) -> list[Document]:
    """One ``chat_analytics`` document per run the reply's turn delegated (issue 13), with the
    delegate's own tokens, cost and time, ``status`` ``delegated`` (not a turn: the usage
    pipelines count no turn, failure or response time for it) and its outcome in
    ``delegation_status``. Derived from the reply alone, like ``analytics_document``."""
    if reply.message_type != "agent":
        return []
    out = []
    for d in reply.metadata.get("delegations") or []:
        if not isinstance(d, dict):
            continue
        out.append(
            {
                "_id": f"{reply.id}:{d.get('id')}",
                "conversation_id": str(reply.conversation_id),
                "user_id": str(reply.user_id),
                "agent_id": d.get("agent_id"),
                "message_id": str(reply.id),
                "model": d.get("model"),
                "input_tokens": d.get("input_tokens") or 0,
                "output_tokens": d.get("output_tokens") or 0,
                "cost": d.get("cost"),
                "execution_time": d.get("execution_time"),
                "tool_calls": 0,
                "delegated_runs": 0,
                "status": "delegated",
                "delegation_status": d.get("status"),
                "delegated_by": d.get("parent_agent_id")
                or (str(reply.agent_id) if reply.agent_id else None),
                "depth": d.get("depth"),
                "request_id": reply.metadata.get("request_id"),
                "timestamp": reply.created_at,
            }
        )
    return out


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


def _window_entry(doc: Document) -> Document:
    return {k: v for k, v in doc.items() if k not in ("_id", "conversation_id", "timestamp")}


HEALTH_COLLECTION = "ev_health"  # one tiny document per server: the readiness write probe


class DocumentStore:
    # metrics: called with (method name, seconds) after every public I/O method when set
    observe: Callable[[str, float], None] | None = None

    def __init__(
        self, db: AsyncDatabase[Document], *, window: int, breaker: CircuitBreaker | None = None
    ) -> None:
        self.db = db
        self.window = window
        self.breaker = breaker
        self.conversations = db[Collections.CHAT_CONVERSATIONS]
        self.messages = db[Collections.CHAT_MESSAGES]
        self.analytics = db[Collections.CHAT_ANALYTICS]
        self.activities = db[Collections.USER_ACTIVITIES]
        self.system_logs = db[Collections.SYSTEM_LOGS]

    # -- writes -------------------------------------------------------------------------------

    async def write_turn(
        self,
        conversation: ConversationRecord,
        messages: Sequence[MessageRecord],
        usage: TurnUsage | None,
        analytics: Document | None,
    ) -> bool:
        """Write one committed turn. Returns True when this call applied the conversation
        document's update, False when the guard refused it (a replay, or an older turn arriving
        after a newer one): the caller leaves that turn for the relay to reconcile."""
        docs = [message_document(m) for m in messages]
        await self.insert_messages(docs)
        applied = await self._update_conversation(conversation, docs, usage)
        if analytics is not None:
            await self.insert_analytics(analytics)
        delegated = [d for m in messages for d in delegation_documents(m)]
        if delegated:
            await self.insert_analytics_many(delegated)
        return applied

    async def insert_messages(self, docs: Sequence[Document]) -> None:
        await _insert_new(self.messages, docs)

    async def insert_analytics_many(self, docs: Sequence[Document]) -> None:
        await _insert_new(self.analytics, docs)

    async def _update_conversation(
        self, conversation: ConversationRecord, docs: Sequence[Document], usage: TurnUsage | None
    ) -> bool:
        """``conversation`` as committed with this turn (its average includes the turn);
        ``usage`` None for a commit in which no agent ran (a streamed turn's user message)."""
        first_seq, last_seq = docs[0]["seq"], docs[-1]["seq"]
        last_activity = docs[-1]["timestamp"]
        cid = str(conversation.id)
        on_insert: Document = {
            "conversation_id": cid,
            "user_id": str(conversation.user_id),
            "title": conversation.title,
            "context": {},
            "metadata.created_at": conversation.created_at,
            "metadata.status": conversation.status,
        }
        fields: Document = {
            "agent_id": str(conversation.agent_id),  # the current agent: a handoff moves it
            "metadata.last_activity": last_activity,
            "metadata.last_seq": last_seq,
            "metadata.avg_response_time": conversation.avg_response_time,
        }
        session = conversation.metadata.get("session_data")
        if session:  # where the conversation came from (issue 18)
            del on_insert["context"]
            on_insert["context.session_data"] = session
        rag = rag_context(docs)
        if rag is not None:  # the turn's sources (a path under "context": not both set)
            on_insert.pop("context", None)
            fields["context.rag_context"] = rag
        try:
            await self.conversations.update_one(
                {"_id": cid, "metadata.last_seq": {"$lt": first_seq}},
                {
                    "$setOnInsert": on_insert,
                    "$push": {
                        "messages": {
                            "$each": [_window_entry(d) for d in docs],
                            "$slice": -self.window,
                        }
                    },
                    "$inc": {
                        "metadata.message_count": len(docs),
                        "metadata.total_tokens": usage.total_tokens if usage else 0,
                        "metadata.total_cost": (usage.cost or 0.0) if usage else 0.0,
                        "metadata.total_response_time": usage.execution_time if usage else 0.0,
                        "metadata.agent_runs": 1 if usage else 0,
                    },
                    "$set": fields,
                },
                upsert=True,
            )
        except DuplicateKeyError:
            return False
        return True

    async def replace_conversation(
        self,
        conversation: ConversationRecord,
        window: Sequence[MessageRecord],
        *,
        context: Document | None = None,
    ) -> bool:
        """Rebuild the conversation document from SQL's truth, unless a newer turn already
        landed (its ``last_seq`` is past this snapshot). Returns whether it was written.
        ``context``: more of ``context`` kept in SQL (the summary, ``conversation_state``)."""
        cid = str(conversation.id)
        doc = self.conversation_document(conversation, window, context=context)
        try:
            result = await self.conversations.replace_one(
                {"_id": cid, "metadata.last_seq": {"$lte": conversation.message_count}},
                doc,
                upsert=True,
            )
        except DuplicateKeyError:
            return False
        return bool(result.matched_count or result.upserted_id is not None)

    def conversation_document(
        self,
        conversation: ConversationRecord,
        window: Sequence[MessageRecord],
        *,
        context: Document | None = None,
    ) -> Document:
        cid = str(conversation.id)
        docs = [message_document(m) for m in window[-self.window :]]
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
            "messages": [_window_entry(d) for d in docs],
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

    async def rebuild_conversation(
        self,
        conversation: ConversationRecord,
        window: Sequence[MessageRecord],
        *,
        observed_last_seq: int | None,
        context: Document | None = None,
    ) -> bool:
        """Repair: replace the document whatever it says, but only if it still is the one the
        caller read (``metadata.last_seq`` unchanged, or still absent): a turn landing meanwhile
        wins and the next round looks again."""
        doc = self.conversation_document(conversation, window, context=context)
        if observed_last_seq is None:
            try:
                await self.conversations.insert_one(doc)
            except DuplicateKeyError:
                return False
            return True
        result = await self.conversations.replace_one(
            {"_id": doc["_id"], "metadata.last_seq": observed_last_seq}, doc
        )
        return bool(result.matched_count)

    async def insert_analytics(self, doc: Document) -> None:
        with contextlib.suppress(DuplicateKeyError):
            await self.analytics.insert_one(doc)

    async def set_feedback(self, message_id: UUID, feedback: Document) -> bool:
        """The rating of an agent message, on its ``chat_messages`` document and on its run's
        ``chat_analytics`` document (counted by the rollups: its day is rolled again). Replays
        set the same value. False when the message is not in MongoDB yet (the relay copies it
        first, then the feedback)."""
        mid = str(message_id)
        result = await self.messages.update_one({"_id": mid}, {"$set": {"feedback": feedback}})
        run = await self.analytics.find_one_and_update(
            {"_id": mid},
            {"$set": {"feedback": {"rating": feedback["rating"]}}},
            projection={"timestamp": 1},
        )
        if run is not None:
            await self.mark_rollups_dirty([run["timestamp"]])
        return bool(result.matched_count) and run is not None

    async def feedback_of(self, conversation_id: UUID) -> dict[str, Document]:
        """message id -> the feedback ``chat_messages`` holds, for one conversation."""
        cursor = self.messages.find(
            {"conversation_id": str(conversation_id), "feedback": {"$exists": True}},
            {"feedback": 1},
        )
        return {d["_id"]: d["feedback"] async for d in cursor}

    async def mark_rollups_dirty(self, timestamps: Sequence[datetime]) -> None:
        """The analytics runs of these moments changed after their day may have been rolled
        up: the next rollup round rolls those days again (a bounded set: one entry per day)."""
        days = sorted(
            {
                datetime(t.year, t.month, t.day, tzinfo=UTC)
                for t in (t.astimezone(UTC) for t in timestamps)
            }
        )
        if days:
            await self.db[Collections.ANALYTICS_STATE].update_one(
                {"_id": "daily"}, {"$addToSet": {"dirty": {"$each": days}}}, upsert=True
            )

    async def log_activity(
        self, *, user_id: UUID, activity: str, details: Document | None = None
    ) -> None:
        await self.activities.insert_one(
            {
                "_id": str(uuid.uuid4()),
                "user_id": str(user_id),
                "activity": activity,
                "details": details or {},
                "timestamp": datetime.now(UTC),
            }
        )

    async def log_system(
        self, *, level: str, event: str, message: str, details: Document | None = None
    ) -> None:
        await self.system_logs.insert_one(
            {
                "_id": str(uuid.uuid4()),
                "level": level,
                "event": event,
                "message": message,
                "details": details or {},
                "timestamp": datetime.now(UTC),
            }
        )

    async def set_conversation_fields(self, conversation_id: UUID, fields: Document) -> None:
        await self.conversations.update_one({"_id": str(conversation_id)}, {"$set": fields})

    async def delete_conversation(self, conversation_id: UUID) -> None:
        cid = str(conversation_id)
        await self.messages.delete_many({"conversation_id": cid})
        await self.analytics.delete_many({"conversation_id": cid})
        await self.conversations.delete_one({"_id": cid})

    # -- reads --------------------------------------------------------------------------------

    async def message_page(
        self,
        conversation_id: UUID,
        *,
        before_seq: int | None,
        limit: int,
        from_seq: int | None = None,
    ) -> list[Document]:
        """Up to ``limit`` messages before ``before_seq``, oldest first (index on conv, seq).

        ``from_seq`` bounds the range from below when the caller knows the page's seqs (they
        are contiguous): a closed index range, ascending, so no server has to sort or skip
        past the rest of the conversation, however long it is."""
        query: Document = {"conversation_id": str(conversation_id)}
        if from_seq is not None:
            upper: Document = {"$lt": before_seq} if before_seq is not None else {}
            query["seq"] = {"$gte": from_seq, **upper}
            cursor = self.messages.find(query).sort("seq", ASCENDING).limit(limit)
            return await cursor.to_list(length=limit)
        if before_seq is not None:
            query["seq"] = {"$lt": before_seq}
        cursor = self.messages.find(query).sort("seq", DESCENDING).limit(limit)
        docs = await cursor.to_list(length=limit)
        docs.reverse()
        return docs

    async def get_conversation(self, conversation_id: UUID) -> Document | None:
        return await self.conversations.find_one(
            {"_id": str(conversation_id)}, {"messages": {"$slice": -self.window}}
        )

    async def conversation_summaries(self, conversation_ids: Sequence[UUID]) -> dict[str, Document]:
        """The conversation documents without their message window."""
        cursor = self.conversations.find(
            {"_id": {"$in": [str(c) for c in conversation_ids]}}, {"messages": 0}
        )
        return {d["_id"]: d async for d in cursor}

    async def message_stats(self, conversation_ids: Sequence[UUID]) -> dict[str, Document]:
        """Per conversation: how many messages ``chat_messages`` holds, and the lowest and
        highest seq (one aggregation for a page of conversations)."""
        pipeline: list[Document] = [
            {"$match": {"conversation_id": {"$in": [str(c) for c in conversation_ids]}}},
            {
                "$group": {
                    "_id": "$conversation_id",
                    "count": {"$sum": 1},
                    "min_seq": {"$min": "$seq"},
                    "max_seq": {"$max": "$seq"},
                }
            },
        ]
        cursor = await self.messages.aggregate(pipeline)
        return {d["_id"]: d async for d in cursor}

    async def message_ids(self, conversation_id: UUID) -> dict[str, int]:
        """Every message id ``chat_messages`` holds for a conversation, and its seq."""
        cursor = self.messages.find({"conversation_id": str(conversation_id)}, {"seq": 1})
        return {d["_id"]: d["seq"] async for d in cursor}

    async def delete_messages(self, message_ids: Sequence[str]) -> None:
        if message_ids:
            await self.messages.delete_many({"_id": {"$in": list(message_ids)}})

    async def conversation_ids_after(self, after: str | None, limit: int) -> list[str]:
        """Ids of the conversation documents, in order, a page at a time."""
        match: Document = {} if after is None else {"_id": {"$gt": after}}
        docs = self.conversations.find(match, {"_id": 1}).sort("_id").limit(limit)
        return [d["_id"] async for d in docs]

    async def message_conversation_ids(self) -> list[str]:
        """Every conversation id ``chat_messages`` mentions (a full scan: the deep check's)."""
        return sorted(await self.messages.distinct("conversation_id"))

    async def totals(self) -> tuple[int, int]:
        """(messages, conversations) MongoDB holds, from collection metadata (cheap)."""
        return (
            await self.messages.estimated_document_count(),
            await self.conversations.estimated_document_count(),
        )

    async def ping(self) -> None:
        await self.db.command("ping")

    async def probe_write(self, owner: str) -> None:
        """A cheap real write (readiness, supervision): a ``ping`` succeeds on a server that
        fails every write, as WiredTiger does after a panic on a full disk."""
        await self.db[HEALTH_COLLECTION].update_one(
            {"_id": owner}, {"$set": {"at": datetime.now(UTC)}}, upsert=True
        )


def _guarded(method: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """Fail at once while the store's breaker is open; a call that cannot reach the server
    opens it. Timed for the metrics when ``observe`` is set (a PyMongo command listener costs
    the driver an event object per command: about 0.1 ms of CPU each, measured)."""
    name = method.__name__

    @functools.wraps(method)
    async def call(self: DocumentStore, *args: Any, **kwargs: Any) -> Any:
        observe = self.observe
        if observe is None:
            return await _breaker_call(self, method, args, kwargs)
        started = time.perf_counter()
        try:
            return await _breaker_call(self, method, args, kwargs)
        finally:
            observe(name, time.perf_counter() - started)

    return call


async def _breaker_call(
    store: DocumentStore,
    method: Callable[..., Awaitable[Any]],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> Any:
    breaker = store.breaker
    if breaker is None:
        return await method(store, *args, **kwargs)
    breaker.check()
    try:
        return await method(store, *args, **kwargs)
    except (MongoUnavailable, NetworkTimeout, WaitQueueTimeoutError):
        raise  # a slow operation or a busy pool is not an unreachable server
    except ConnectionFailure as exc:
        breaker.failure(exc)
        raise


# Every public I/O method goes through the breaker, those added later included. ``ping`` and
# ``probe_write`` do not: they are how a closed-for-now store is found healthy again.
for _name, _method in list(vars(DocumentStore).items()):
    if (
        inspect.iscoroutinefunction(_method)
        and not _name.startswith("_")
        and _name not in ("ping", "probe_write")
    ):
        setattr(DocumentStore, _name, _guarded(_method))


async def _insert_new(collection: Any, docs: Sequence[Document]) -> None:
    """Insert what is not there yet: replayed documents (same ``_id``) are skipped."""
    if not docs:
        return
    try:
        await collection.insert_many(list(docs), ordered=False)
    except BulkWriteError as exc:
        errors = exc.details.get("writeErrors", [])
        if not errors or any(e.get("code") != DUPLICATE_KEY for e in errors):
            raise
        # replayed documents are already there; any new ones were inserted (ordered=False)
