"""A conversation's repair from SQL, as the reconciler's comparison planned it."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from pymongo.errors import PyMongoError
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from employeevirtual.stores.mongo.documents import DocumentStore
from employeevirtual.stores.mongo.shapes import message_document
from employeevirtual.stores.records import ConversationRecord
from employeevirtual.stores.sql.engine import read_connection, write_transaction
from employeevirtual.stores.sql.feedback import FeedbackRepository
from employeevirtual.stores.sql.messages import MessageReader
from employeevirtual.stores.sql.sync import SyncReader, SyncRepository
from employeevirtual.sync.drift import RepairPlan
from employeevirtual.sync.memory import conversation_context

__all__ = ["repair_conversation"]

log = logging.getLogger(__name__)


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
        if plan.rebuild:
            async with read_connection(engine) as conn:
                # fresh: a turn may have committed since the page was read
                fresh = await SyncReader(conn).get(conversation.id) or conversation
                window = await MessageReader(conn).page(
                    fresh.id, before_seq=fresh.message_count + 1, limit=documents.window
                )
                context = await conversation_context(conn, fresh.id)
            if not await documents.rebuild_conversation(
                fresh, window, observed_last_seq=plan.observed_last_seq, context=context
            ):
                return False  # a turn landed meanwhile: the next round looks again
        async with write_transaction(engine) as conn:  # as far as this comparison saw, no further
            await SyncRepository(conn).advance(conversation.id, to_seq=conversation.message_count)
    except (PyMongoError, SQLAlchemyError) as exc:
        log.warning("repair of %s failed: %s", conversation.id, type(exc).__name__)
        return False
    return True
