"""A conversation's repair from SQL, as the reconciler's comparison planned it."""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from uuid import UUID

from pymongo.errors import PyMongoError
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from employeevirtual.stores.mongo.documents import DocumentStore
from employeevirtual.stores.mongo.shapes import message_document
from employeevirtual.stores.records import ConversationRecord
from employeevirtual.stores.sql.engine import Connection, read_connection, write_transaction
from employeevirtual.stores.sql.feedback import FeedbackRepository
from employeevirtual.stores.sql.messages import MessageReader
from employeevirtual.stores.sql.sync import SyncReader, SyncRepository
from employeevirtual.sync.drift import RepairPlan
from employeevirtual.sync.memory import conversation_context

__all__ = ["repair_conversation", "take_back_if_gone"]

log = logging.getLogger(__name__)

Reader = Callable[[], AbstractAsyncContextManager[Connection]]


async def take_back_if_gone(read: Reader, documents: DocumentStore, conversation_id: UUID) -> bool:
    """After copying a conversation from SQL into MongoDB: True when SQL no longer holds it (a
    delete or an erasure committed meanwhile), its documents then deleted again.

    Why this suffices (as for the sync acks' ``_take_back_late``): a delete or an erasure
    commits the conversation's SQL delete before it deletes its MongoDB documents
    (``ConversationService.delete``/``purge``). If our writes finished before that MongoDB
    delete began, it removes them; if not, its SQL commit came before our writes returned, so
    this read, begun after them, finds the conversation gone. A deactivated owner's conversation
    is still in SQL: it is copied as any other (deactivation is no request to erase)."""
    async with read() as conn:
        if await SyncReader(conn).existing([conversation_id]):
            return False
    await documents.delete_conversation(conversation_id)
    log.info(
        "conversation %s was deleted while it was copied: its copies taken back", conversation_id
    )
    return True


async def repair_conversation(
    engine: AsyncEngine,
    documents: DocumentStore,
    conversation: ConversationRecord,
    plan: RepairPlan,
) -> bool:
    """MongoDB made to agree with SQL as ``plan`` says (extra and moved messages deleted,
    missing ones inserted, feedback written again, the document rebuilt), then ``synced_seq``
    advanced as far as the comparison saw. False when it failed or a turn landed meanwhile
    (the next round looks again)."""
    try:
        await documents.delete_messages(plan.delete_ids)
        for start in range(0, len(plan.insert_ids), 500):
            async with read_connection(engine) as conn:
                records = await MessageReader(conn).by_id(plan.insert_ids[start : start + 500])
            await documents.insert_messages([message_document(m) for m in records])
        for record in plan.feedback:  # after the messages it belongs to
            if await documents.set_feedback(record.message_id, record.view()):
                async with write_transaction(engine) as conn:
                    await FeedbackRepository(conn).mark_synced(record, now=datetime.now(UTC))
        rebuilt = True
        if plan.rebuild:
            async with read_connection(engine) as conn:
                # fresh: a turn may have committed since the page was read
                fresh = await SyncReader(conn).get(conversation.id) or conversation
                window = await MessageReader(conn).page(
                    fresh.id, before_seq=fresh.message_count + 1, limit=documents.window
                )
                context = await conversation_context(conn, fresh.id)
            rebuilt = await documents.rebuild_conversation(
                fresh, window, observed_last_seq=plan.observed_last_seq, context=context
            )
        # deleted or erased since the page was read: what was just written is taken back
        if await take_back_if_gone(lambda: read_connection(engine), documents, conversation.id):
            return True  # MongoDB agrees with SQL again: neither holds it
        if not rebuilt:
            return False  # a turn landed meanwhile: the next round looks again
        async with write_transaction(engine) as conn:  # as far as this comparison saw, no further
            await SyncRepository(conn).advance(conversation.id, to_seq=conversation.message_count)
    except (PyMongoError, SQLAlchemyError) as exc:
        log.warning("repair of %s failed: %s", conversation.id, type(exc).__name__)
        return False
    return True
