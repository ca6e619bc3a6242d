"""MongoDB side of the chat: idempotent writers and bounded readers.

Every write is safe to replay: documents carry ids fixed before the first attempt, and the
conversation document's update is guarded by the turn's first ``seq``. Nothing here relies on
the driver's retryable writes (Cosmos DB runs with ``retrywrites=false``).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from pymongo import ASCENDING, DESCENDING, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import (
    BulkWriteError,
    DuplicateKeyError,
)

from employeevirtual.stores.mongo.breaker import CircuitBreaker
from employeevirtual.stores.mongo.collections import Collections
from employeevirtual.stores.mongo.guard import guarded_io
from employeevirtual.stores.mongo.shapes import (
    Document,
    conversation_document,
    message_document,
    rag_context,
    window_entry,
)
from employeevirtual.stores.mongo.turn_writes import DUPLICATE_KEY, TurnWrites
from employeevirtual.stores.records import ConversationRecord, MessageRecord, TurnUsage

__all__ = ["DocumentStore"]


HEALTH_COLLECTION = "ev_health"  # one tiny document per server: the readiness write probe


@guarded_io(spared=("ping", "probe_write"))
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
        self._turns = TurnWrites(self.messages, self.conversations)

    # -- writes -------------------------------------------------------------------------------

    async def write_turn(
        self,
        conversation: ConversationRecord,
        messages: Sequence[MessageRecord],
        usage: TurnUsage | None,
    ) -> bool:
        """Write one committed turn's messages and its conversation document's update (two
        commands; its ``chat_analytics`` documents are the caller's, batched: ``SyncAcks``).
        Returns True when this call applied the conversation document's update, False when the
        guard refused it (a replay, or an older turn arriving after a newer one): the caller
        leaves that turn for the relay to reconcile."""
        docs = [message_document(m) for m in messages]
        query, update = self._conversation_update(conversation, docs, usage)
        # sent with the other turns queued meanwhile (``TurnWrites``): same outcome per turn
        return await self._turns.write(
            str(conversation.id), docs, UpdateOne(query, update, upsert=True)
        )

    async def insert_messages(self, docs: Sequence[Document]) -> None:
        await _insert_new(self.messages, docs)

    async def insert_analytics_many(self, docs: Sequence[Document]) -> None:
        """``chat_analytics`` documents not there yet (one command; replays skipped)."""
        await _insert_new(self.analytics, docs)

    async def delete_analytics(self, ids: Sequence[str]) -> None:
        """The ``chat_analytics`` documents of these ``_id``s (runs written too late: their
        conversation was deleted, or its owner erased, meanwhile)."""
        if ids:
            await self.analytics.delete_many({"_id": {"$in": list(ids)}})

    def _conversation_update(
        self, conversation: ConversationRecord, docs: Sequence[Document], usage: TurnUsage | None
    ) -> tuple[Document, Document]:
        """The guarded upsert of ``conversation`` as committed with this turn (its average
        includes the turn): its query and its update. ``usage`` None for a commit in which no
        agent ran (a streamed turn's user message)."""
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
        return (
            {"_id": cid, "metadata.last_seq": {"$lt": first_seq}},
            {
                "$setOnInsert": on_insert,
                "$push": {
                    "messages": {
                        "$each": [window_entry(d) for d in docs],
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
        )

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
        return conversation_document(conversation, window, size=self.window, context=context)

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

    async def set_feedback(self, message_id: UUID, feedback: Document) -> bool:
        """The rating of an agent message, on its ``chat_messages`` document and on its run's
        ``chat_analytics`` document (counted by the rollups: its day is rolled again). Replays
        set the same value. False when the message or its run is not in MongoDB yet (the run's
        document comes with the next sync-ack flush, ``sync/acks.py``): the relay carries the
        feedback later."""
        mid = str(message_id)
        result = await self.messages.update_one({"_id": mid}, {"$set": {"feedback": feedback}})
        # an update and a read, not findAndModify: SecantusDB (the embedded default) re-runs a
        # findAndModify's write as {_id, $and: [query]}, which no index answers, so it scanned
        # every turn's analytics document under the collection's lock; the run's timestamp
        # never changes, so reading it apart is as good
        rated = await self.analytics.update_one(
            {"_id": mid}, {"$set": {"feedback": {"rating": feedback["rating"]}}}
        )
        run = None
        if rated.matched_count:
            run = await self.analytics.find_one({"_id": mid}, {"timestamp": 1})
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
        await self.activities.insert_one(_activity(user_id, activity, details or {}))

    async def log_conversation_created(self, conversation: ConversationRecord) -> None:
        """The ``conversation_created`` activity of a conversation's first turn, its ``_id``
        fixed by the conversation's (a replay leaves it as it is), so that
        ``delete_conversation`` finds it by ``_id``."""
        doc = _activity(
            conversation.user_id, "conversation_created", {"conversation_id": str(conversation.id)}
        )
        key = {"_id": _created_id(conversation.id)}
        await self.activities.update_one(key, {"$setOnInsert": doc | key}, upsert=True)

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

    async def delete_conversation(self, conversation_id: UUID, *, activity: bool = False) -> None:
        """``activity``: its ``conversation_created`` activity too (one its first turn wrote
        after its delete or its owner's erasure: ``SyncAcks``); a user's delete keeps it."""
        cid = str(conversation_id)
        await self.messages.delete_many({"conversation_id": cid})
        await self.analytics.delete_many({"conversation_id": cid})
        await self.conversations.delete_one({"_id": cid})
        if activity:
            await self.activities.delete_one({"_id": _created_id(conversation_id)})

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

    async def analytics_conversation_ids(self) -> list[str]:
        """Every conversation id ``chat_analytics`` mentions (a full scan: the deep check's; a
        run batched with the acks that lands after its conversation was deleted is taken back
        by the flush itself, unless its second check failed)."""
        return sorted(await self.analytics.distinct("conversation_id"))

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


def _created_id(conversation_id: UUID) -> str:
    return f"conversation_created:{conversation_id}"


def _activity(user_id: UUID, activity: str, details: Document) -> Document:
    return {
        "_id": str(uuid.uuid4()),
        "user_id": str(user_id),
        "activity": activity,
        "details": details,
        "timestamp": datetime.now(UTC),
    }


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
