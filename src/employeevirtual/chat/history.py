"""A conversation's history, a page at a time: from MongoDB when it holds every message of the
page, from SQL otherwise."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal
from uuid import UUID

from pymongo.errors import PyMongoError
from sqlalchemy.ext.asyncio import AsyncEngine

from employeevirtual.errors import NotFound
from employeevirtual.stores.mongo.documents import DocumentStore
from employeevirtual.stores.mongo.shapes import message_from_document
from employeevirtual.stores.records import ConversationRecord, MessageRecord, UserRecord
from employeevirtual.stores.sql.conversations import ConversationReader
from employeevirtual.stores.sql.engine import read_connection
from employeevirtual.stores.sql.feedback import FeedbackReader
from employeevirtual.stores.sql.messages import MessageReader
from employeevirtual.stores.supersede import LOOKAHEAD, superseded_ids

__all__ = ["HistoryPage", "find_by_dialogue", "read_history"]

log = logging.getLogger(__name__)

DIALOGUE_CANDIDATES = 10
MAX_DIALOGUE_MATCH = 400


@dataclass(frozen=True, slots=True)
class HistoryPage:
    conversation: ConversationRecord
    messages: list[MessageRecord]
    next_before: int | None
    source: Literal["mongodb", "sql"]


async def read_history(
    engine: AsyncEngine,
    documents: DocumentStore,
    user: UserRecord,
    conversation_id: UUID,
    *,
    limit: int,
    before: int | None,
    include_superseded: bool = False,
) -> HistoryPage:
    """A page of messages, newest page first, oldest first within it. The owner's conversation,
    or anyone's for an admin (the caller audits that read). Messages replaced by a regenerated
    answer or an edit are left out, or kept and marked ``superseded`` with
    ``include_superseded``; they are found from the page and the ``LOOKAHEAD`` messages after
    it."""
    async with read_connection(engine) as conn:
        conversation = await ConversationReader(conn).get(conversation_id, user, include_all=True)
    if conversation is None:
        raise NotFound(f"conversation {conversation_id} not found")
    upper = conversation.message_count
    if before is not None:
        upper = min(upper, before - 1)
    lowest = max(1, upper - limit + 1)
    ahead = min(conversation.message_count, upper + LOOKAHEAD)
    expected = list(range(lowest, ahead + 1))
    next_before = lowest if lowest > 1 else None
    if upper < lowest:
        return HistoryPage(conversation, [], None, "sql")
    page = await _mongo_page(documents, conversation, expected, len(expected))
    source: Literal["mongodb", "sql"] = "mongodb"
    if page is None:
        source = "sql"
        async with read_connection(engine) as conn:
            page = await MessageReader(conn).page(
                conversation_id, before_seq=ahead + 1, limit=len(expected)
            )
            rated = await FeedbackReader(conn).for_messages(
                [m.id for m in page if m.message_type == "agent"]
            )
        page = [replace(m, feedback=rated[m.id].view()) if m.id in rated else m for m in page]
    gone = superseded_ids(page)
    rows = [m for m in page if m.seq <= upper]
    if include_superseded:
        rows = [
            replace(m, metadata={**m.metadata, "superseded": True}) if m.id in gone else m
            for m in rows
        ]
    else:
        rows = [m for m in rows if m.id not in gone]
    return HistoryPage(conversation, rows, next_before, source)


async def _mongo_page(
    documents: DocumentStore, conversation: ConversationRecord, expected: list[int], limit: int
) -> list[MessageRecord] | None:
    try:
        docs = await documents.message_page(
            conversation.id, before_seq=expected[-1] + 1, limit=limit, from_seq=expected[0]
        )
    except PyMongoError as exc:
        log.info("history of %s served from SQL: %s", conversation.id, type(exc).__name__)
        return None
    if [d["seq"] for d in docs] != expected:
        return None
    return [message_from_document(d) for d in docs]


async def find_by_dialogue(
    engine: AsyncEngine, user_id: UUID, agent_id: UUID, dialogue: Sequence[tuple[str, str]]
) -> UUID | None:
    """The caller's conversation with the agent whose stored messages are exactly ``dialogue``
    ((message_type, content) pairs, oldest first), if one is among the ``DIALOGUE_CANDIDATES``
    latest with that many messages: how a client that resends the whole history (the OpenAI
    door) maps onto one stored conversation. Bounded work: one indexed read, then at most that
    many pages of ``len(dialogue)`` messages."""
    if not dialogue or len(dialogue) > MAX_DIALOGUE_MATCH:
        return None
    async with read_connection(engine) as conn:
        candidates = await ConversationReader(conn).with_count(
            user_id, agent_id, message_count=len(dialogue), limit=DIALOGUE_CANDIDATES
        )
        for candidate in candidates:
            rows = await MessageReader(conn).page(
                candidate.id, before_seq=None, limit=len(dialogue)
            )
            if [(m.message_type, m.content) for m in rows] == list(dialogue):
                return candidate.id
    return None
