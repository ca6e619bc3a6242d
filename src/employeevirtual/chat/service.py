"""The chat turn and conversation history: the one place that orders writes across stores.

Order of a turn: resolve agent and conversation (owner-checked, owner active) in one SQL
statement outside any transaction, and the recent context from the in-process cache when the
row's ``message_count`` says it is current (SQL otherwise) -> run the agent (no transaction
open) -> commit both messages and the counters in one SQL transaction -> write MongoDB
(idempotent; a failure there is left to the relay) -> answer.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from pymongo.errors import PyMongoError
from sqlalchemy.ext.asyncio import AsyncEngine

from employeevirtual.agents.runner import AgentFailure, AgentRunner, RunOutcome
from employeevirtual.chat.context import RecentContext
from employeevirtual.chat.idempotency import IdempotencyClaim
from employeevirtual.chat.supersede import LOOKAHEAD, current, superseded_ids
from employeevirtual.errors import Conflict, Forbidden, NotFound, ServiceError, Unauthorized
from employeevirtual.stores.mongo.documents import (
    DocumentStore,
    TurnCounters,
    analytics_document,
)
from employeevirtual.stores.records import (
    AgentRecord,
    ConversationRecord,
    MessageRecord,
    UserRecord,
)
from employeevirtual.stores.sql.agents import AgentReader
from employeevirtual.stores.sql.audit import AuditRepository
from employeevirtual.stores.sql.conversations import (
    ConversationReader,
    ConversationRepository,
    NewConversation,
    TurnCounts,
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

__all__ = ["AgentRunFailed", "ChatService", "HistoryPage", "OpenedTurn", "TurnResult"]

log = logging.getLogger(__name__)

DIALOGUE_CANDIDATES = 10
MAX_DIALOGUE_MATCH = 400


@dataclass(frozen=True, slots=True)
class TurnResult:
    conversation: ConversationRecord
    user_message: MessageRecord
    agent_message: MessageRecord
    outcome: RunOutcome
    stored_in_mongodb: bool


class AgentRunFailed(ServiceError):
    """The agent failed; the user's message and the failure are committed all the same."""

    def __init__(
        self, failure: AgentFailure, *, conversation_id: UUID, user_message: MessageRecord
    ):
        super().__init__(failure.message, conversation_id=str(conversation_id))
        # a usage limit is the run's budget (settings), not a provider fault: 422
        self.status_code = {"timeout": 504, "limit": 422}.get(failure.kind, 502)
        self.kind = failure.kind
        self.conversation_id = conversation_id
        self.user_message = user_message


@dataclass(frozen=True, slots=True)
class OpenedTurn:
    """A turn whose user message is committed and whose agent has not answered yet."""

    conversation: ConversationRecord
    agent: AgentRecord
    history: list[MessageRecord]  # the context before the user's message
    user_message: MessageRecord
    model_history: list[MessageRecord]  # what the model is given (history, or a new one's context)
    reply_metadata: dict[str, Any] = field(default_factory=dict)  # e.g. what the reply replaces
    advance_cache: bool = True  # False: regenerate/edit, whose window is not [history, user]


@dataclass(frozen=True, slots=True)
class HistoryPage:
    conversation: ConversationRecord
    messages: list[MessageRecord]
    next_before: int | None
    source: str


def _now() -> datetime:
    """Aware UTC, truncated to milliseconds: what MongoDB keeps, so both stores agree."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


class ChatService:
    def __init__(
        self,
        *,
        engine: AsyncEngine,
        documents: DocumentStore,
        runner: AgentRunner,
        acks: SyncAcks,
        context_messages: int,
        after_commit: Callable[[ConversationRecord], None] | None = None,
    ) -> None:
        self.engine = engine
        self.documents = documents
        self.runner = runner
        self.acks = acks
        self.context_messages = context_messages
        self.after_commit = after_commit
        self.context = RecentContext(messages=context_messages)

    # -- the turn -----------------------------------------------------------------------------

    async def turn(
        self,
        user: UserRecord | UUID,
        *,
        message: str,
        agent_id: UUID | None,
        conversation_id: UUID | None,
        idempotency: IdempotencyClaim | None = None,
        context: Sequence[MessageRecord] = (),
    ) -> TurnResult:
        """``user`` may be just the token's subject: the turn's own read checks the user exists
        and is active, so the route needs no user read of its own. ``idempotency``: the
        request's key, completed with the response inside the turn's transaction (a failed
        run's 502/504 included). ``context``: earlier messages the model is given when the turn
        starts a new conversation (the OpenAI door's resent history); they are not stored."""
        user_id = user if isinstance(user, UUID) else user.id
        conversation, agent, history = await self._resolve(user_id, agent_id, conversation_id)

        failure: AgentFailure | None = None
        outcome: RunOutcome | None = None
        try:
            outcome = await self.runner.run(agent, message, history if conversation else [*context])
        except AgentFailure as exc:
            failure = exc

        now = _now()
        conversation_id = conversation.id if conversation else uuid.uuid4()
        user_message = MessageRecord(
            id=uuid.uuid4(),
            conversation_id=conversation_id,
            seq=0,
            user_id=user_id,
            agent_id=None,
            content=message,
            message_type="user",
            metadata={},
            created_at=now,
        )
        reply = self._reply(user_id, agent, conversation_id, outcome, failure)

        async def complete_key(
            conn: WriteConnection, stored: list[MessageRecord], record: ConversationRecord
        ) -> None:
            assert idempotency is not None
            result: TurnResult | AgentRunFailed
            if failure is not None:
                result = AgentRunFailed(failure, conversation_id=record.id, user_message=stored[0])
            else:
                assert outcome is not None
                result = TurnResult(record, stored[0], stored[1], outcome, False)
            await idempotency.complete(conn, result, record.id)

        stored, record = await self._commit(
            user_id,
            agent,
            conversation,
            [user_message, reply],
            reply.created_at,  # last_message_at: the newest message, as MongoDB's last_activity
            on_commit=complete_key if idempotency is not None else None,
        )
        if self.after_commit is not None:
            self.after_commit(record)
        user_message, reply = stored
        self.context.advance(
            record.id,
            base_count=conversation.message_count if conversation else 0,
            base=history,
            added=stored,
            message_count=record.message_count,
        )
        analytics = analytics_document(reply)
        in_mongo = await self._write_documents(
            record, stored, analytics, created=conversation is None
        )
        if failure is not None:
            raise AgentRunFailed(failure, conversation_id=record.id, user_message=user_message)
        assert outcome is not None
        return TurnResult(record, user_message, reply, outcome, in_mongo)

    async def find_by_dialogue(
        self, user_id: UUID, agent_id: UUID, dialogue: list[tuple[str, str]]
    ) -> UUID | None:
        """The caller's conversation with the agent whose stored messages are exactly
        ``dialogue`` ((message_type, content) pairs, oldest first), if one is among the
        ``DIALOGUE_CANDIDATES`` latest with that many messages: how a client that resends the
        whole history (the OpenAI door) maps onto one stored conversation. Bounded work: one
        indexed read, then at most that many pages of ``len(dialogue)`` messages."""
        if not dialogue or len(dialogue) > MAX_DIALOGUE_MATCH:
            return None
        async with read_connection(self.engine) as conn:
            candidates = await ConversationReader(conn).with_count(
                user_id, agent_id, message_count=len(dialogue), limit=DIALOGUE_CANDIDATES
            )
            for candidate in candidates:
                rows = await MessageReader(conn).page(
                    candidate.id, before_seq=None, limit=len(dialogue)
                )
                if [(m.message_type, m.content) for m in rows] == dialogue:
                    return candidate.id
        return None

    # -- the turn in two commits (streamed turns) ------------------------------------------------

    async def open_turn(
        self,
        user_id: UUID,
        *,
        message: str,
        agent_id: UUID | None,
        conversation_id: UUID | None,
        context: Sequence[MessageRecord] = (),
    ) -> OpenedTurn:
        """A streamed turn's first half: the user's message committed (and written to MongoDB)
        before the model runs, so the stream's ``turn`` event can name it with its ``seq``."""
        conversation, agent, history = await self._resolve(user_id, agent_id, conversation_id)
        now = _now()
        user_message = MessageRecord(
            id=uuid.uuid4(),
            conversation_id=conversation.id if conversation else uuid.uuid4(),
            seq=0,
            user_id=user_id,
            agent_id=None,
            content=message,
            message_type="user",
            metadata={},
            created_at=now,
        )
        stored, record = await self._commit(
            user_id, agent, conversation, [user_message], now, agent_runs=0
        )
        self.context.advance(
            record.id,
            base_count=conversation.message_count if conversation else 0,
            base=history,
            added=stored,
            message_count=record.message_count,
        )
        await self._write_documents(
            record, stored, None, created=conversation is None, agent_runs=0
        )
        model_history = history if conversation else [*context]
        return OpenedTurn(record, agent, history, stored[0], model_history)

    async def _last_exchange(
        self, conversation: ConversationRecord
    ) -> tuple[MessageRecord, list[MessageRecord]]:
        """The conversation's last current user message and its current answers."""
        async with read_connection(self.engine) as conn:
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

    async def open_regenerate(self, user_id: UUID, conversation_id: UUID) -> OpenedTurn:
        """Answer the last user message again: nothing is written until the new answer, which
        is appended with ``supersedes`` naming the answer(s) it replaces."""
        conversation, agent, history = await self._resolve(user_id, None, conversation_id)
        assert conversation is not None
        last, answers = await self._last_exchange(conversation)
        before = [m for m in history if m.seq < last.seq]
        return OpenedTurn(
            conversation,
            agent,
            before,
            last,
            before,
            reply_metadata={"regenerated": True, "supersedes": [str(a.id) for a in answers]},
            advance_cache=False,
        )

    async def open_edit(
        self, user_id: UUID, conversation_id: UUID, message_id: UUID, *, content: str
    ) -> OpenedTurn:
        """Edit the last user message: a new user message (``is_edited``, ``edited_at``,
        ``supersedes`` the original) is committed with an audit row keeping the original
        text, then answered; the original and its answers stay, superseded."""
        conversation, agent, history = await self._resolve(user_id, None, conversation_id)
        assert conversation is not None
        last, answers = await self._last_exchange(conversation)
        if last.id != message_id:
            async with read_connection(self.engine) as conn:
                known = await MessageReader(conn).by_id([message_id])
            if not known or known[0].conversation_id != conversation.id:
                raise NotFound(f"message {message_id} not found in conversation {conversation_id}")
            raise Conflict("only the conversation's last user message can be edited")
        now = _now()
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

        async def audit(
            conn: WriteConnection, stored: list[MessageRecord], record: ConversationRecord
        ) -> None:
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

        stored, record = await self._commit(
            user_id, agent, conversation, [edited], now, on_commit=audit, agent_runs=0
        )
        self.context.forget(record.id)
        await self._write_documents(record, stored, None, created=False, agent_runs=0)
        before = [m for m in history if m.seq < last.seq]
        return OpenedTurn(
            record,
            agent,
            before,
            stored[0],
            before,
            reply_metadata={"supersedes": [str(a.id) for a in answers]},
            advance_cache=False,
        )

    async def answer(
        self, opened: OpenedTurn, *, idempotency: IdempotencyClaim | None = None
    ) -> TurnResult:
        """Run the agent on an opened turn and close it (the non-streamed form)."""
        failure: AgentFailure | None = None
        outcome: RunOutcome | None = None
        try:
            outcome = await self.runner.run(
                opened.agent, opened.user_message.content, opened.model_history
            )
        except AgentFailure as exc:
            failure = exc
        return await self.close_turn(
            opened, outcome=outcome, failure=failure, idempotency=idempotency
        )

    async def close_turn(
        self,
        opened: OpenedTurn,
        *,
        outcome: RunOutcome | None,
        failure: AgentFailure | None,
        idempotency: IdempotencyClaim | None = None,
        extra_metadata: dict[str, Any] | None = None,
    ) -> TurnResult:
        """The second half: the agent's message (or the failure) committed with the counters
        and the idempotency key's response, then written to MongoDB. Raises AgentRunFailed
        after committing a failure, like ``turn``."""
        conversation, user_message = opened.conversation, opened.user_message
        metadata = dict(opened.reply_metadata)
        if failure is not None and metadata.get("regenerated"):
            metadata.pop("supersedes", None)  # a failed regeneration replaces nothing
        reply = self._reply(
            conversation.user_id,
            opened.agent,
            conversation.id,
            outcome,
            failure,
            {**metadata, **(extra_metadata or {})},
        )

        async def complete_key(
            conn: WriteConnection, stored: list[MessageRecord], record: ConversationRecord
        ) -> None:
            assert idempotency is not None
            result: TurnResult | AgentRunFailed
            if failure is not None:
                result = AgentRunFailed(
                    failure, conversation_id=record.id, user_message=user_message
                )
            else:
                assert outcome is not None
                result = TurnResult(record, user_message, stored[0], outcome, False)
            await idempotency.complete(conn, result, record.id)

        stored, record = await self._commit(
            conversation.user_id,
            opened.agent,
            conversation,
            [reply],
            reply.created_at,
            on_commit=complete_key if idempotency is not None else None,
        )
        if self.after_commit is not None:
            self.after_commit(record)
        if opened.advance_cache:
            self.context.advance(
                record.id,
                base_count=conversation.message_count,
                base=[*opened.history, user_message][-self.context_messages :],
                added=stored,
                message_count=record.message_count,
            )
        else:
            self.context.forget(record.id)
        in_mongo = await self._write_documents(
            record, stored, analytics_document(stored[0]), created=False
        )
        if failure is not None:
            raise AgentRunFailed(failure, conversation_id=record.id, user_message=user_message)
        assert outcome is not None
        return TurnResult(record, user_message, stored[0], outcome, in_mongo)

    async def _resolve(
        self, user_id: UUID, agent_id: UUID | None, conversation_id: UUID | None
    ) -> tuple[ConversationRecord | None, AgentRecord, list[MessageRecord]]:
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
            conversation, agent, caller_is_admin = found
            if agent_id is not None and agent_id != agent.id:
                raise Conflict(
                    f"conversation {conversation_id} belongs to agent {agent.id}, not {agent_id}"
                )
            if agent.deleted_at is not None:
                raise Conflict(
                    f"agent {agent.id} of conversation {conversation_id} was deleted; "
                    "the conversation can be read but not continued"
                )
            if agent.user_id != user_id and agent.visibility != "shared" and not caller_is_admin:
                # visibility is re-checked on every turn: an agent made private stops serving
                # the conversations others had with it (they stay readable)
                raise Forbidden(
                    f"agent {agent.id} is no longer shared by its owner; conversation "
                    f"{conversation_id} can be read but not continued"
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
            return conversation, agent, current(history)  # replaced answers stay out

    @staticmethod
    async def _require_active(conn: Connection, user_id: UUID) -> None:
        """Only on the error path: a missing row may mean the caller, not the id, is gone."""
        user = await UserReader(conn).get(user_id)
        if user is None or not user.is_active:
            raise Unauthorized("the token's user no longer exists or is deactivated")

    @staticmethod
    def _reply(
        user_id: UUID,
        agent: AgentRecord,
        conversation_id: UUID,
        outcome: RunOutcome | None,
        failure: AgentFailure | None,
        extra: dict[str, Any] | None = None,
    ) -> MessageRecord:
        now = _now()
        if outcome is not None:
            content = outcome.output
            message_type = "agent"
            metadata: dict[str, Any] = {
                "model_used": outcome.model_name,
                "execution_time": round(outcome.execution_time, 6),
                "tokens_used": outcome.tokens,
                "input_tokens": outcome.input_tokens,
                "output_tokens": outcome.output_tokens,
                "cost": None if outcome.cost is None else float(outcome.cost),
            }
            if outcome.tool_calls:
                metadata["tool_calls"] = list(outcome.tool_calls)
        else:
            assert failure is not None
            content = failure.message
            message_type = "error"
            metadata = {
                "model_used": agent.model,
                "error": failure.kind,
                "execution_time": round(failure.execution_time, 6),
            }
        if extra:
            metadata.update(extra)
        return MessageRecord(
            id=uuid.uuid4(),
            conversation_id=conversation_id,
            seq=0,
            user_id=user_id,
            agent_id=agent.id,
            content=content,
            message_type=message_type,
            metadata=metadata,
            created_at=now,
        )

    async def _commit(
        self,
        user_id: UUID,
        agent: AgentRecord,
        conversation: ConversationRecord | None,
        new_messages: list[MessageRecord],
        now: datetime,
        on_commit: Callable[
            [WriteConnection, list[MessageRecord], ConversationRecord], Awaitable[None]
        ]
        | None = None,
        agent_runs: int = 1,
    ) -> tuple[list[MessageRecord], ConversationRecord]:
        """One SQL transaction: the turn's messages, the conversation's counters and whatever
        ``on_commit`` adds (the idempotency key's response)."""
        reply = new_messages[-1]
        counts = TurnCounts(
            messages=len(new_messages),
            tokens=int(reply.metadata.get("tokens_used") or 0),
            cost=Decimal(str(reply.metadata.get("cost") or 0)),
            response_time=Decimal(str(reply.metadata.get("execution_time") or 0)),
            agent_runs=agent_runs,
        )
        error = reply.content[:2000] if reply.message_type == "error" else None
        async with write_transaction(self.engine) as conn:
            conversations = ConversationRepository(conn)
            if conversation is None:
                new = NewConversation(
                    id=reply.conversation_id,
                    user_id=user_id,
                    agent_id=agent.id,
                    title=f"Conversa com {agent.name}"[:200],
                    counts=counts,
                    error=error,
                )
                record = await conversations.create(new, now=now)
            else:
                found = await conversations.apply_turn(
                    conversation.id, counts, now=now, error=error
                )
                if found is None:
                    raise NotFound(f"conversation {conversation.id} not found")
                record = found
            first_seq = record.message_count - counts.messages + 1
            stored = [replace(m, seq=first_seq + i) for i, m in enumerate(new_messages)]
            await MessageRepository(conn).insert_many(stored)
            if on_commit is not None:
                await on_commit(conn, stored, record)
        return stored, record

    async def _write_documents(
        self,
        conversation: ConversationRecord,
        stored: list[MessageRecord],
        analytics: dict[str, Any] | None,
        *,
        created: bool,
        agent_runs: int = 1,
    ) -> bool:
        """MongoDB after the commit. Failures leave ``synced_seq`` behind for the relay."""
        reply = stored[-1]
        counters = TurnCounters(
            messages=len(stored),
            tokens=int(reply.metadata.get("tokens_used") or 0),
            cost=float(reply.metadata.get("cost") or 0.0),
            response_time=float(reply.metadata.get("execution_time") or 0.0),
            agent_runs=agent_runs,
            avg_response_time=conversation.avg_response_time,
        )
        try:
            applied = await self.documents.write_turn(conversation, stored, counters, analytics)
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
        include_superseded: bool = False,
    ) -> HistoryPage:
        """A page of messages, newest page first, oldest first within it; MongoDB when it has
        every message of the page, SQL otherwise. Messages replaced by a regenerated answer or
        an edit are left out, or kept and marked ``superseded`` with ``include_superseded``;
        they are found from the page and the ``LOOKAHEAD`` messages after it."""
        async with read_connection(self.engine) as conn:
            conversation = await ConversationReader(conn).get(
                conversation_id, user, include_all=True
            )
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
        page = await self._mongo_page(conversation, expected, len(expected))
        source = "mongodb"
        if page is None:
            source = "sql"
            async with read_connection(self.engine) as conn:
                page = await MessageReader(conn).page(
                    conversation_id, before_seq=ahead + 1, limit=len(expected)
                )
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
        self, conversation: ConversationRecord, expected: list[int], limit: int
    ) -> list[MessageRecord] | None:
        try:
            docs = await self.documents.message_page(
                conversation.id, before_seq=expected[-1] + 1, limit=limit, from_seq=expected[0]
            )
        except PyMongoError as exc:
            log.info("history of %s served from SQL: %s", conversation.id, type(exc).__name__)
            return None
        if [d["seq"] for d in docs] != expected:
            return None
        return [_message_from_document(d) for d in docs]


def _message_from_document(doc: dict[str, Any]) -> MessageRecord:
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
    )


def _aware(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)
