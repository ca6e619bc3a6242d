"""The chat turn, top to bottom, and a conversation's history: the one place that orders writes
across stores.

A turn, as ``turn`` reads: hold one of the user's turn slots -> resolve agent and conversation
(owner-checked, owner active) in one SQL statement outside any transaction, and the recent
context from the in-process cache when the row's ``message_count`` says it is current (SQL
otherwise) -> run the agent (no transaction open; a failed run is recorded, not raised) -> commit
both messages, the counters and the Idempotency-Key's response in one SQL transaction -> write
MongoDB (idempotent; a failure there is left to the relay) -> return the outcome.

With an Idempotency-Key, ``claim`` comes first (it answers a replay with the stored response);
a turn that ends before its commit releases the key so that a retry runs it.

A streamed turn (``chat.live``) is the same turn in two commits: ``open_turn`` commits the
user's message before the agent runs, ``close_turn`` the agent's answer (or the failure).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any
from uuid import UUID

from pymongo.errors import PyMongoError
from sqlalchemy.ext.asyncio import AsyncEngine

from employeevirtual.agents.runner import AgentFailure, AgentRunner, RunOutcome
from employeevirtual.chat.context import RecentContext
from employeevirtual.chat.conversations import record_audit_read
from employeevirtual.chat.history import HistoryPage, find_by_dialogue, read_history
from employeevirtual.chat.idempotency import (
    IdempotencyClaim,
    IdempotencyKeys,
    StoredResponse,
    fingerprint,
)
from employeevirtual.chat.limits import TurnSlots
from employeevirtual.chat.responses import turn_response
from employeevirtual.chat.turn import (
    TurnFailed,
    TurnOutcome,
    TurnRequest,
    TurnSucceeded,
    agent_reply,
    user_message,
)
from employeevirtual.errors import Conflict, NotFound, Unauthorized
from employeevirtual.stores.mongo.documents import DocumentStore, analytics_document
from employeevirtual.stores.records import (
    AgentRecord,
    ConversationRecord,
    MessageRecord,
    TurnUsage,
    UserRecord,
)
from employeevirtual.stores.sql.agents import AgentReader
from employeevirtual.stores.sql.conversations import (
    ConversationReader,
    ConversationRepository,
    NewConversation,
)
from employeevirtual.stores.sql.engine import (
    Connection,
    WriteConnection,
    read_connection,
    write_transaction,
)
from employeevirtual.stores.sql.messages import MessageReader, MessageRepository
from employeevirtual.stores.sql.users import UserReader
from employeevirtual.sync.acks import SyncAcks

__all__ = [
    "ChatService",
    "HistoryPage",
    "OpenedTurn",
    "TurnFailed",
    "TurnOutcome",
    "TurnSucceeded",
]

log = logging.getLogger(__name__)

ROUTE = "POST /api/chat/agent"  # what an Idempotency-Key's fingerprint is taken for


@dataclass(frozen=True, slots=True)
class OpenedTurn:
    """A turn whose user message is committed and whose agent has not answered yet."""

    conversation: ConversationRecord
    agent: AgentRecord
    history: list[MessageRecord]  # the context before the user's message
    user_message: MessageRecord
    model_history: list[MessageRecord]  # what the model is given (history, or a new one's context)


class ChatService:
    def __init__(
        self,
        *,
        engine: AsyncEngine,
        documents: DocumentStore,
        runner: AgentRunner,
        acks: SyncAcks,
        keys: IdempotencyKeys,
        slots: TurnSlots,
        context_messages: int,
        max_message_chars: int,
        after_commit: Callable[[ConversationRecord], None] | None = None,
    ) -> None:
        """``after_commit``: called after each turn's SQL commit, before MongoDB is written."""
        self.engine = engine
        self.documents = documents
        self.runner = runner
        self.acks = acks
        self.keys = keys
        self.slots = slots
        self.context_messages = context_messages
        self.max_message_chars = max_message_chars
        self.after_commit = after_commit
        self.context = RecentContext(messages=context_messages)

    # -- the turn -----------------------------------------------------------------------------

    def request(
        self,
        message: str | None,
        *,
        agent_id: UUID | None,
        conversation_id: UUID | None,
        context: Sequence[MessageRecord] = (),
    ) -> TurnRequest:
        """The message rules: InvalidInput (422) for a request no turn can answer."""
        return TurnRequest.checked(
            message,
            agent_id=agent_id,
            conversation_id=conversation_id,
            max_chars=self.max_message_chars,
            context=context,
        )

    async def claim(
        self,
        user_id: UUID,
        request: TurnRequest,
        key: str,
        *,
        request_fingerprint: str | None = None,
    ) -> IdempotencyClaim | StoredResponse:
        """The claim to run ``request`` under ``key``, or the stored response to replay.
        ``request_fingerprint``: what makes two requests the same for another door (default:
        the chat API's message, agent and conversation)."""
        if request_fingerprint is None:
            request_fingerprint = fingerprint(
                route=ROUTE,
                message=request.message,
                agent_id=request.agent_id,
                conversation_id=request.conversation_id,
            )
        return await self.keys.claim(
            user_id=user_id, key=key, request_fingerprint=request_fingerprint
        )

    async def find_by_dialogue(
        self, user_id: UUID, agent_id: UUID, dialogue: Sequence[tuple[str, str]]
    ) -> UUID | None:
        """The caller's conversation with the agent holding exactly ``dialogue`` (see
        ``history.find_by_dialogue``)."""
        return await find_by_dialogue(self.engine, user_id, agent_id, dialogue)

    async def turn(
        self,
        user: UserRecord | UUID,
        request: TurnRequest,
        *,
        claim: IdempotencyClaim | None = None,
    ) -> TurnOutcome:
        """One turn. ``user`` may be just the token's subject: the turn's own read checks the
        user exists and is active. ``claim``: the request's key, completed with the response
        inside the turn's transaction (a failed run's 502/504 included)."""
        user_id = user if isinstance(user, UUID) else user.id
        try:
            async with self.slots.hold(user_id):
                return await self._turn(user_id, request, claim)
        except BaseException:
            if claim is not None and claim.response is None:  # nothing committed
                await self.keys.release(claim)
            raise

    async def _turn(
        self, user_id: UUID, request: TurnRequest, claim: IdempotencyClaim | None
    ) -> TurnOutcome:
        conversation, agent, history = await self._resolve(user_id, request)
        model_history = history if conversation else [*request.context]
        run = await self._run(agent, request.message, model_history)
        conversation_id = conversation.id if conversation else uuid.uuid4()
        asked = user_message(user_id, conversation_id, request.message)
        reply = agent_reply(user_id, agent, conversation_id, run)
        outcome, stored = await self._commit_turn(
            user_id, agent, conversation, [asked, reply], run, claim=claim
        )
        return await self._finish(outcome, conversation, history, stored)

    async def open_turn(self, user_id: UUID, request: TurnRequest) -> OpenedTurn:
        """A streamed turn's first half: the user's message committed (and written to MongoDB)
        before the model runs, so the stream's ``turn`` event can name it with its ``seq``.
        The caller holds the turn slot (``slots.hold``)."""
        conversation, agent, history = await self._resolve(user_id, request)
        conversation_id = conversation.id if conversation else uuid.uuid4()
        asked = user_message(user_id, conversation_id, request.message)
        async with write_transaction(self.engine) as conn:
            record, stored = await self._store(conn, user_id, agent, conversation, [asked], None)
        self.context.advance(
            record.id,
            base_count=conversation.message_count if conversation else 0,
            base=history,
            added=stored,
            message_count=record.message_count,
        )
        await self._write_documents(record, stored, None, created=conversation is None)
        model_history = history if conversation else [*request.context]
        return OpenedTurn(record, agent, history, stored[0], model_history)

    async def close_turn(
        self,
        opened: OpenedTurn,
        run: RunOutcome | AgentFailure,
        *,
        claim: IdempotencyClaim | None = None,
        extra_metadata: dict[str, Any] | None = None,
    ) -> TurnOutcome:
        """The second half: the agent's message (or the failure) committed with the counters
        and the Idempotency-Key's response, then written to MongoDB."""
        conversation = opened.conversation
        reply = agent_reply(
            conversation.user_id, opened.agent, conversation.id, run, extra=extra_metadata
        )
        outcome, stored = await self._commit_turn(
            conversation.user_id,
            opened.agent,
            conversation,
            [reply],
            run,
            claim=claim,
            asked=opened.user_message,
        )
        base = [*opened.history, opened.user_message][-self.context_messages :]
        return await self._finish(outcome, conversation, base, stored)

    async def _resolve(
        self, user_id: UUID, request: TurnRequest
    ) -> tuple[ConversationRecord | None, AgentRecord, list[MessageRecord]]:
        agent_id, conversation_id = request.agent_id, request.conversation_id
        async with read_connection(self.engine) as conn:
            if conversation_id is None:
                if agent_id is None:
                    raise NotFound("agent_id is required to start a conversation")
                agent = await AgentReader(conn).get_visible_to_active(agent_id, user_id)
                if agent is None:
                    await self._require_active(conn, user_id)
                    raise NotFound(f"agent {agent_id} not found")
                return None, agent, []
            found = await ConversationReader(conn).get_with_agent(conversation_id, user_id)
            if found is None:
                await self._require_active(conn, user_id)
                raise NotFound(f"conversation {conversation_id} not found")
            conversation, agent = found
            if agent_id is not None and agent_id != agent.id:
                raise Conflict(
                    f"conversation {conversation_id} belongs to agent {agent.id}, not {agent_id}"
                )
            if agent.deleted_at is not None:
                raise Conflict(
                    f"agent {agent.id} of conversation {conversation_id} was deleted; "
                    "the conversation can be read but not continued"
                )
            if conversation.status != "active":
                raise Conflict(
                    f"conversation {conversation_id} is {conversation.status}; "
                    "set its status to active to continue it"
                )
            history = self.context.get(conversation_id, conversation.message_count)
            if history is None:
                history = await MessageReader(conn).recent_dialogue(
                    conversation_id, limit=self.context_messages
                )
            return conversation, agent, history

    @staticmethod
    async def _require_active(conn: Connection, user_id: UUID) -> None:
        """Only on the error path: a missing row may mean the caller, not the id, is gone."""
        user = await UserReader(conn).get(user_id)
        if user is None or not user.is_active:
            raise Unauthorized("the token's user no longer exists or is deactivated")

    async def _run(
        self, agent: AgentRecord, message: str, history: list[MessageRecord]
    ) -> RunOutcome | AgentFailure:
        try:
            return await self.runner.run(agent, message, history)
        except AgentFailure as failure:
            return failure

    async def _commit_turn(
        self,
        user_id: UUID,
        agent: AgentRecord,
        conversation: ConversationRecord | None,
        new: list[MessageRecord],
        run: RunOutcome | AgentFailure,
        *,
        claim: IdempotencyClaim | None,
        asked: MessageRecord | None = None,
    ) -> tuple[TurnOutcome, list[MessageRecord]]:
        """One SQL transaction: the turn's new messages and counters, and the Idempotency-Key
        completed with the response its outcome answers. ``asked``: the user's message when it
        was committed before (a streamed turn); otherwise it is the first of ``new``."""
        async with write_transaction(self.engine) as conn:
            record, stored = await self._store(conn, user_id, agent, conversation, new, run.usage)
            outcome = _outcome(record, asked or stored[0], stored[-1], run)
            if claim is not None:
                await claim.complete(conn, turn_response(outcome), record.id)
        return outcome, stored

    @staticmethod
    async def _store(
        conn: WriteConnection,
        user_id: UUID,
        agent: AgentRecord,
        conversation: ConversationRecord | None,
        new: list[MessageRecord],
        usage: TurnUsage | None,
    ) -> tuple[ConversationRecord, list[MessageRecord]]:
        """The messages, their seqs taken from the conversation's counters (created with the
        first turn), and the run's ``usage`` (None: no agent ran) added to the counters."""
        reply = new[-1]
        error = reply.content[:2000] if reply.message_type == "error" else None
        now = reply.created_at  # last_message_at: the newest message, as MongoDB's last_activity
        conversations = ConversationRepository(conn)
        if conversation is None:
            new_conversation = NewConversation(
                id=reply.conversation_id,
                user_id=user_id,
                agent_id=agent.id,
                title=f"Conversa com {agent.name}"[:200],
            )
            record = await conversations.create(
                new_conversation, usage, messages=len(new), now=now, error=error
            )
        else:
            found = await conversations.apply_turn(
                conversation.id, usage, messages=len(new), now=now, error=error
            )
            if found is None:
                raise NotFound(f"conversation {conversation.id} not found")
            record = found
        first = record.message_count - len(new) + 1
        stored = [replace(m, seq=first + i) for i, m in enumerate(new)]
        await MessageRepository(conn).insert_many(stored)
        return record, stored

    async def _finish(
        self,
        outcome: TurnOutcome,
        before: ConversationRecord | None,
        history: list[MessageRecord],
        stored: list[MessageRecord],
    ) -> TurnOutcome:
        """After the commit: the post-commit hook, the context cache, MongoDB."""
        record = outcome.conversation
        if self.after_commit is not None:
            self.after_commit(record)
        self.context.advance(
            record.id,
            base_count=before.message_count if before else 0,
            base=history,
            added=stored,
            message_count=record.message_count,
        )
        in_mongo = await self._write_documents(
            record, stored, outcome.usage, created=before is None
        )
        return replace(outcome, stored_in_mongodb=in_mongo)

    async def _write_documents(
        self,
        conversation: ConversationRecord,
        stored: list[MessageRecord],
        usage: TurnUsage | None,
        *,
        created: bool,
    ) -> bool:
        """MongoDB after the commit (``usage`` None: no agent ran in it). Failures leave
        ``synced_seq`` behind for the relay."""
        analytics = analytics_document(stored[-1])
        try:
            applied = await self.documents.write_turn(conversation, stored, usage, analytics)
            if created:
                await self.documents.log_activity(
                    user_id=conversation.user_id,
                    activity="conversation_created",
                    details={"conversation_id": str(conversation.id)},
                )
        except PyMongoError as exc:
            log.warning(
                "MongoDB write failed for conversation %s (seq %d-%d): %s; left to the relay",
                conversation.id,
                stored[0].seq,
                stored[-1].seq,
                type(exc).__name__,
            )
            return False
        if applied:
            self.acks.ack(conversation.id, stored[0].seq, stored[-1].seq)
        return applied

    # -- history ------------------------------------------------------------------------------

    async def history(
        self,
        user: UserRecord,
        conversation_id: UUID,
        *,
        limit: int,
        before: int | None,
        client_ip: str | None = None,
    ) -> HistoryPage:
        """A page of messages, newest page first, oldest first within it; MongoDB when it has
        every message of the page, SQL otherwise. An admin's read of someone else's
        conversation is audited before the page is returned."""
        page = await read_history(
            self.engine, self.documents, user, conversation_id, limit=limit, before=before
        )
        await record_audit_read(
            self.engine, user, page.conversation, what="messages", client_ip=client_ip
        )
        return page


def _outcome(
    record: ConversationRecord,
    asked: MessageRecord,
    reply: MessageRecord,
    run: RunOutcome | AgentFailure,
) -> TurnOutcome:
    if isinstance(run, AgentFailure):
        return TurnFailed(record, asked, reply, run.usage, kind=run.kind)
    return TurnSucceeded(record, asked, reply, run.usage)
