"""The turn's store steps, each one call: ``resolve`` (the single read before the agent runs),
``store_messages`` (inside the turn's SQL transaction) and ``write_turn_documents`` (MongoDB
after the commit: two commands, the analytics documents batched by ``SyncAcks``)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from uuid import UUID

from pymongo.errors import PyMongoError
from sqlalchemy.ext.asyncio import AsyncEngine

from employeevirtual.chat.context import RecentContext
from employeevirtual.errors import Conflict, Forbidden, NotFound, Unauthorized
from employeevirtual.request_context import current_session_data
from employeevirtual.stores.mongo.analytics_shapes import analytics_document, delegation_documents
from employeevirtual.stores.mongo.documents import DocumentStore
from employeevirtual.stores.mongo.shapes import Document
from employeevirtual.stores.records import (
    AgentRecord,
    BudgetRecord,
    ConversationRecord,
    MessageRecord,
    TurnUsage,
)
from employeevirtual.stores.sql.agents import AgentReader
from employeevirtual.stores.sql.conversations import (
    ConversationReader,
    ConversationRepository,
    NewConversation,
)
from employeevirtual.stores.sql.engine import Connection, WriteConnection, read_connection
from employeevirtual.stores.sql.messages import MessageReader, MessageRepository
from employeevirtual.stores.sql.users import UserReader, UserRepository
from employeevirtual.stores.supersede import current
from employeevirtual.sync.acks import SyncAcks

__all__ = [
    "Resolved",
    "resolve",
    "store_messages",
    "turn_analytics",
    "write_documents",
    "write_turn_documents",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Resolved:
    """What a turn reads before its agent runs."""

    conversation: ConversationRecord | None  # None: the turn starts a new conversation
    agent: AgentRecord
    history: list[MessageRecord]  # the recent context, replaced answers left out
    budgets: list[BudgetRecord]  # the user's and the agent's, checked before the run


async def resolve(
    engine: AsyncEngine,
    context: RecentContext,
    user_id: UUID,
    *,
    agent_id: UUID | None,
    conversation_id: UUID | None,
    max_conversations: int | None = None,
) -> Resolved:
    """The conversation (None for a new one), its agent, the recent context and the budgets,
    owner-checked and with the owner active, in one SQL statement outside any transaction (the
    context from ``context`` when the row's ``message_count`` says it is current).
    ``max_conversations``: a new conversation is refused (409) when the user already keeps
    that many, before the agent runs or anything is written."""
    async with read_connection(engine) as conn:
        if conversation_id is None:
            if agent_id is None:
                raise NotFound("agent_id is required to start a conversation")
            visible = await AgentReader(conn).get_visible_to_active(agent_id, user_id)
            if visible is None:
                await _require_active(conn, user_id)
                raise NotFound(f"agent {agent_id} not found")
            agent, budgets = visible
            if max_conversations is not None:
                await _check_room(conn, user_id, max_conversations)
            return Resolved(None, agent, [], budgets)
        found = await ConversationReader(conn).get_with_agent(conversation_id, user_id)
        if found is None:
            await _require_active(conn, user_id)
            raise NotFound(f"conversation {conversation_id} not found")
        conversation, agent, caller_is_admin, budgets = found
        if agent_id is not None and agent_id != agent.id:
            # the user hands the conversation over to another agent they may use (issue 13);
            # the move is committed with the turn (``chat.handoff``)
            other = await AgentReader(conn).get_visible_to_active(agent_id, user_id)
            if other is None:
                raise NotFound(f"agent {agent_id} not found")
            agent, budgets = other
        if agent.deleted_at is not None:
            raise Conflict(
                f"agent {agent.id} of conversation {conversation_id} was deleted; "
                "the conversation can be read but not continued"
            )
        if agent.user_id != user_id and agent.visibility != "shared" and not caller_is_admin:
            # visibility is re-checked on every turn: an agent made private stops serving the
            # conversations others had with it (they stay readable)
            raise Forbidden(
                f"agent {agent.id} is no longer shared by its owner; conversation "
                f"{conversation_id} can be read but not continued"
            )
        if conversation.status != "active":
            raise Conflict(
                f"conversation {conversation_id} is {conversation.status}; "
                "set its status to active to continue it"
            )
        history = context.get(conversation_id, conversation.message_count)
        if history is None:
            history = await MessageReader(conn).recent_dialogue(
                conversation_id, limit=context.messages
            )
        return Resolved(conversation, agent, current(history), budgets)


async def _check_room(conn: Connection, user_id: UUID, limit: int) -> None:
    """Conflict (409) when the user keeps ``limit`` conversations already."""
    if await ConversationReader(conn).count_owned(user_id) >= limit:
        raise Conflict(
            f"you already have {limit} conversations (the limit); delete old ones to start a "
            "new one (archived conversations count too), or continue an existing one"
        )


async def _require_active(conn: Connection, user_id: UUID) -> None:
    """Only on the error path: a missing row may mean the caller, not the id, is gone."""
    user = await UserReader(conn).get(user_id)
    if user is None or not user.is_active:
        raise Unauthorized("the token's user no longer exists or is deactivated")


async def store_messages(
    conn: WriteConnection,
    user_id: UUID,
    agent: AgentRecord,
    conversation: ConversationRecord | None,
    new: list[MessageRecord],
    usage: TurnUsage | None,
    *,
    max_conversations: int | None = None,
) -> tuple[ConversationRecord, list[MessageRecord]]:
    """The messages, their seqs taken from the conversation's counters (the conversation
    created with the first turn), and the run's ``usage`` (None: no agent ran) added to the
    counters. Inside the caller's transaction. ``max_conversations``: the per-user cap,
    counted again under the user's row lock before a new conversation is written (concurrent
    first turns that all passed ``resolve`` count one after the other). A new conversation is
    refused (401) when that lock finds the user deactivated: a first turn that passed
    ``resolve`` before an erasure's deactivation cannot commit a conversation after the
    erasure's purge (the deactivation commits before the lock is granted, or waits for this
    commit, which the purge then sees). For a conversation that exists, one statement on
    PostgreSQL (``ConversationRepository.append``; an erasure's purge deletes it)."""
    reply = new[-1]
    error = reply.content[:2000] if reply.message_type == "error" else None
    now = reply.created_at  # last_message_at: the newest message, as MongoDB's last_activity
    conversations = ConversationRepository(conn)
    if conversation is None:
        if not await UserRepository(conn).lock(user_id):
            raise Unauthorized("the token's user no longer exists or is deactivated")
        if max_conversations is not None:
            await _check_room(conn, user_id, max_conversations)
        new_conversation = NewConversation(
            id=reply.conversation_id,
            user_id=user_id,
            agent_id=agent.id,
            title=f"Conversa com {agent.name}"[:200],
            # the channel and client it came from (``context.session_data``, issue 18)
            metadata={"session_data": session} if (session := current_session_data()) else {},
        )
        record = await conversations.create(
            new_conversation, usage, messages=len(new), now=now, error=error
        )
        first = record.message_count - len(new) + 1
        stored = [replace(m, seq=first + i) for i, m in enumerate(new)]
        await MessageRepository(conn).insert_many(stored)
        return record, stored
    appended = await conversations.append(conversation.id, new, usage, now=now, error=error)
    if appended is None:
        raise NotFound(f"conversation {conversation.id} not found")
    return appended


async def write_documents(
    documents: DocumentStore,
    acks: SyncAcks,
    conversation: ConversationRecord,
    stored: list[MessageRecord],
    usage: TurnUsage | None,
    *,
    created: bool,
) -> bool:
    """MongoDB after the commit (``usage`` None: no agent ran in it): the messages and the
    conversation document now, the turn's ``chat_analytics`` documents (its run, the runs it
    delegated) with its acknowledgement at the next flush of ``acks`` (``SyncAcks``), so they
    reach MongoDB up to one flush interval after the turn. Failures, and a write the
    conversation document's guard refused, leave ``synced_seq`` behind for the relay, which
    rebuilds the analytics documents too. Every write is acknowledged or checked: the flush
    takes back one that landed after the conversation's delete (``SyncAcks``), with its
    ``conversation_created`` activity."""
    try:
        applied = await documents.write_turn(conversation, stored, usage)
        if created:
            await documents.log_conversation_created(conversation)
    except PyMongoError as exc:
        log.warning(
            "MongoDB write failed for conversation %s (seq %d-%d): %s; left to the relay",
            conversation.id,
            stored[0].seq,
            stored[-1].seq,
            type(exc).__name__,
        )
        acks.check(conversation.id, created=created)  # its messages may be in: taken back
        return False
    # checked by the next flush either way: a write that landed after the conversation's
    # delete (which upserted its document again) is taken back there, not left in MongoDB
    if applied:
        acks.ack(
            conversation.id,
            stored[0].seq,
            stored[-1].seq,
            analytics=turn_analytics(stored),
            created=created,
        )
    else:
        acks.check(conversation.id, created=created)
    return applied


def turn_analytics(stored: list[MessageRecord]) -> list[Document]:
    """The ``chat_analytics`` documents of a write: its reply's run (the last message) and the
    runs its replies delegated, as the relay rebuilds them (``analytics_shapes``)."""
    run = analytics_document(stored[-1])
    delegated = [d for m in stored for d in delegation_documents(m)]
    return [*([run] if run is not None else []), *delegated]


async def write_turn_documents(
    documents: DocumentStore,
    acks: SyncAcks,
    conversation: ConversationRecord,
    stored: list[MessageRecord],
    usage: TurnUsage,
    *,
    pending: list[MessageRecord],
    created: bool,
    before: ConversationRecord | None,
) -> bool:
    """A turn's messages to MongoDB: ``stored`` with ``pending`` (what the turn committed when
    it opened) in one write when their seqs are contiguous. ``created``: the turn created the
    conversation; ``before``: the conversation as the turn found it."""
    if pending and pending[-1].seq + 1 != stored[0].seq:
        # another turn committed in between: two writes, so each acknowledges only its own
        # contiguous seqs (the relay fills whatever the guard refuses)
        await write_documents(documents, acks, conversation, pending, None, created=created)
        pending = []
    return await write_documents(
        documents,
        acks,
        conversation,
        [*pending, *stored],
        usage,
        created=created and (bool(pending) or before is None),
    )
