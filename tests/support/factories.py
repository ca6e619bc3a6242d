"""Test data made through the services, not HTTP, for tests whose subject is not the API:
users (``AccountService``), agents (``AgentService``) and conversations with their turns
(``ChatService``), on the app's own ``Runtime``. What they make is what the API would have made
(the first user is the admin, as over HTTP); ``headers`` gives a made user a bearer token for
the HTTP calls the test is about."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from employeevirtual.agents.definitions import AgentDraft
from employeevirtual.chat.turn import TurnOutcome, TurnSucceeded
from employeevirtual.runtime import Runtime
from employeevirtual.stores.records import (
    AgentRecord,
    ConversationRecord,
    MessageRecord,
    UserRecord,
)
from support.api import PASSWORD

__all__ = ["agent", "conversation", "headers", "turn", "turn_messages", "user"]


async def user(runtime: Runtime, *, name: str = "Ana", email: str | None = None) -> UserRecord:
    """A new user (the first one of a server is its admin)."""
    email = email or f"{name.lower()}-{uuid.uuid4().hex[:8]}@example.com"
    return await runtime.accounts.register(email=email, password=PASSWORD, name=name)


def headers(runtime: Runtime, owner: UserRecord) -> dict[str, str]:
    """A bearer token for ``owner``, as logging in would give."""
    token, _ = runtime.tokens.issue(owner.id)
    return {"Authorization": f"Bearer {token}"}


async def agent(runtime: Runtime, owner: UserRecord, **fields: Any) -> AgentRecord:
    """An agent of ``owner``: ``AgentDraft``'s fields, by default the API helper's name and
    instructions (``support.api.create_agent``)."""
    draft = AgentDraft(**{"name": "Assistente", "instructions": "Be concise.", **fields})
    return await runtime.agents.create(owner, draft)


async def turn(
    runtime: Runtime,
    owner: UserRecord,
    message: str,
    *,
    agent: AgentRecord | None = None,
    conversation: ConversationRecord | uuid.UUID | None = None,
) -> TurnOutcome:
    """One chat turn: in ``conversation``, or starting one with ``agent``."""
    conversation_id = (
        conversation.id if isinstance(conversation, ConversationRecord) else conversation
    )
    request = runtime.chat.request(
        message,
        agent_id=agent.id if agent is not None and conversation_id is None else None,
        conversation_id=conversation_id,
    )
    return await runtime.chat.turn(owner, request)


async def conversation(
    runtime: Runtime,
    owner: UserRecord,
    agent: AgentRecord,
    messages: Sequence[str] = ("Olá",),
) -> ConversationRecord:
    """A new conversation with ``agent``, one answered turn per message; the conversation as
    the last turn left it."""
    assert messages, "a conversation starts with a turn"
    record: ConversationRecord | None = None
    for message in messages:
        outcome = await turn(runtime, owner, message, agent=agent, conversation=record)
        assert isinstance(outcome, TurnSucceeded), outcome
        record = outcome.conversation
    assert record is not None
    return record


def turn_messages(
    user_id: UUID,
    agent_id: UUID,
    conversation_id: UUID,
    *,
    count: int = 2,
    at: datetime | None = None,
) -> list[MessageRecord]:
    """A turn's messages for the repositories' write (their seqs are taken by it): the user's,
    then the agent's with tool-call metadata, edited; non-ASCII content and distinct times, so a
    write path that loses a column or a type shows."""
    at = at or datetime.now(UTC)
    return [
        MessageRecord(
            id=uuid.uuid4(),
            conversation_id=conversation_id,
            seq=0,  # taken by the write
            user_id=user_id,
            agent_id=None if i == 0 else agent_id,
            content=f"message {i} — ünïcode",
            message_type="user" if i == 0 else "agent",
            metadata={} if i == 0 else {"tool_calls": [{"id": "t1", "args": {"x": 1.5}}]},
            created_at=at + timedelta(microseconds=i),
            is_edited=i == 1,
            edited_at=at if i == 1 else None,
        )
        for i in range(count)
    ]
