"""Answering again: regenerate the last answer, or edit the last user message and answer it.
Append-only (``stores.supersede``): the new message names what it replaces. Each opens a turn
that ``ChatService.answer`` (or a live turn) closes."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING
from uuid import UUID

from employeevirtual.chat.commit import store_messages
from employeevirtual.chat.turn import OpenedTurn, TurnRequest, now_ms
from employeevirtual.errors import Conflict, NotFound
from employeevirtual.stores.records import ConversationRecord, MessageRecord
from employeevirtual.stores.sql.audit import AuditRepository
from employeevirtual.stores.sql.engine import read_connection, write_transaction
from employeevirtual.stores.sql.messages import MessageReader
from employeevirtual.stores.supersede import LOOKAHEAD, current

if TYPE_CHECKING:
    from employeevirtual.chat.service import ChatService

__all__ = ["Edit", "Regenerate", "Rework", "open_rework"]


@dataclass(frozen=True, slots=True)
class Regenerate:
    """Answer the conversation's last user message again."""

    conversation_id: UUID


@dataclass(frozen=True, slots=True)
class Edit:
    """Edit the conversation's last user message (``message_id``) to ``content``, and answer it."""

    conversation_id: UUID
    message_id: UUID
    content: str


Rework = Regenerate | Edit  # what ``ChatService.rework`` answers again


async def open_rework(chat: ChatService, user_id: UUID, rework: Rework) -> OpenedTurn:
    """The turn that answers ``rework``, opened (``ChatService.answer`` or a live turn closes
    it)."""
    if isinstance(rework, Edit):
        return await open_edit(
            chat, user_id, rework.conversation_id, rework.message_id, content=rework.content
        )
    return await open_regenerate(chat, user_id, rework.conversation_id)


async def _last_exchange(
    chat: ChatService, conversation: ConversationRecord
) -> tuple[MessageRecord, list[MessageRecord]]:
    """The conversation's last current user message and its current answers."""
    async with read_connection(chat.engine) as conn:
        recent = await MessageReader(conn).page(
            conversation.id, before_seq=None, limit=4 * LOOKAHEAD
        )
    live = current(recent)
    users = [m for m in live if m.message_type == "user"]
    if not users:
        raise Conflict(f"conversation {conversation.id} has no user message to answer again")
    last = users[-1]
    answers = [m for m in live if m.seq > last.seq and m.message_type in ("agent", "error")]
    return last, answers


async def open_regenerate(chat: ChatService, user_id: UUID, conversation_id: UUID) -> OpenedTurn:
    """Answer the last user message again: nothing is written until the new answer, which
    is appended with ``supersedes`` naming the answer(s) it replaces."""
    started = time.perf_counter()
    read = await chat.resolve(user_id, TurnRequest("", conversation_id=conversation_id))
    chat.accounting.check(read.budgets, started)
    conversation = read.conversation
    assert conversation is not None
    last, answers = await _last_exchange(chat, conversation)
    before = [m for m in read.history if m.seq < last.seq]
    return OpenedTurn(
        conversation,
        read.agent,
        before,
        last,
        before,
        reply_metadata={"regenerated": True, "supersedes": [str(a.id) for a in answers]},
        advance_cache=False,
        budgets=read.budgets,
        started=started,
    )


async def open_edit(
    chat: ChatService, user_id: UUID, conversation_id: UUID, message_id: UUID, *, content: str
) -> OpenedTurn:
    """Edit the last user message: a new user message (``is_edited``, ``edited_at``,
    ``supersedes`` the original) is committed with an audit row keeping the original text,
    then answered; the original and its answers stay, superseded."""
    started = time.perf_counter()
    read = await chat.resolve(user_id, TurnRequest("", conversation_id=conversation_id))
    chat.accounting.check(read.budgets, started)
    conversation, agent, history = read.conversation, read.agent, read.history
    assert conversation is not None
    last, answers = await _last_exchange(chat, conversation)
    if last.id != message_id:
        async with read_connection(chat.engine) as conn:
            known = await MessageReader(conn).by_id([message_id])
        if not known or known[0].conversation_id != conversation.id:
            raise NotFound(f"message {message_id} not found in conversation {conversation_id}")
        raise Conflict("only the conversation's last user message can be edited")
    now = now_ms()
    edited = MessageRecord(
        id=uuid.uuid4(),
        conversation_id=conversation.id,
        seq=0,
        user_id=user_id,
        agent_id=None,
        content=content,
        message_type="user",
        metadata={"edits": str(last.id), "supersedes": [str(last.id)]},
        created_at=now,
        is_edited=True,
        edited_at=now,
    )
    async with write_transaction(chat.engine) as conn:
        record, stored = await store_messages(conn, user_id, agent, conversation, [edited], None)
        await AuditRepository(conn).record(
            action="message.edited",
            actor_id=user_id,
            now=now,
            target_type="message",
            target_id=str(last.id),
            details={
                "conversation_id": str(conversation.id),
                "original_content": last.content,
                "new_message_id": str(stored[0].id),
            },
        )
    chat.context.forget(record.id)
    before = [m for m in history if m.seq < last.seq]
    return OpenedTurn(
        record,
        agent,
        before,
        stored[0],
        before,
        reply_metadata={"supersedes": [str(a.id) for a in answers]},
        advance_cache=False,
        pending=stored,
        budgets=read.budgets,
        started=started,
    )
