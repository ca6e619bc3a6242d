"""The chat turn and conversation history: the one place that orders writes across stores.

Order of a turn: resolve agent and conversation (owner-checked, owner active) in one SQL
statement outside any transaction, and the recent context from the in-process cache when the
row's ``message_count`` says it is current (SQL otherwise) -> run the agent (no transaction
open) -> commit both messages and the counters in one SQL transaction -> write MongoDB
(idempotent; a failure there is left to the relay) -> answer.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from pymongo.errors import PyMongoError
from sqlalchemy.ext.asyncio import AsyncEngine

from employeevirtual.agents.knowledge import KnowledgeSearch
from employeevirtual.agents.runner import AgentFailure, AgentRunner, RunOutcome
from employeevirtual.analytics import metrics
from employeevirtual.analytics.budgets import BudgetAlert, BudgetExceeded, BudgetService
from employeevirtual.chat.context import RecentContext
from employeevirtual.chat.idempotency import IdempotencyClaim
from employeevirtual.chat.supersede import LOOKAHEAD, current, superseded_ids
from employeevirtual.errors import Conflict, Forbidden, NotFound, ServiceError, Unauthorized
from employeevirtual.knowledge.service import KnowledgeService
from employeevirtual.request_context import current_request_id
from employeevirtual.stores.mongo.documents import (
    DocumentStore,
    TurnCounters,
    analytics_document,
)
from employeevirtual.stores.records import (
    AgentRecord,
    BudgetRecord,
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
from employeevirtual.stores.sql.feedback import FeedbackReader
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
        super().__init__(
            failure.message,
            conversation_id=str(conversation_id),
            request_id=current_request_id(),  # what to quote: the details are in the server log
        )
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
    # committed when the turn opened, written to MongoDB with the reply (one write, not two)
    pending: list[MessageRecord] = field(default_factory=list)
    created: bool = False  # the turn created the conversation
    advance_cache: bool = True  # False: regenerate/edit, whose window is not [history, user]
    budgets: list[BudgetRecord] = field(default_factory=list)  # charged when the turn closes
    started: float = 0.0  # perf_counter at open (the turn's latency metric)
    request_id: str | None = None


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
        knowledge: KnowledgeService | None = None,
        budgets: BudgetService | None = None,
    ) -> None:
        self.engine = engine
        self.knowledge = knowledge
        self.budgets = budgets
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
        request_id: str | None = None,
    ) -> TurnResult:
        """``user`` may be just the token's subject: the turn's own read checks the user exists
        and is active, so the route needs no user read of its own. ``idempotency``: the
        request's key, completed with the response inside the turn's transaction (a failed
        run's 502/504 included). ``context``: earlier messages the model is given when the turn
        starts a new conversation (the OpenAI door's resent history); they are not stored.
        ``request_id`` goes with the run into its analytics and into the system logs it
        causes."""
        started = time.perf_counter()
        user_id = user if isinstance(user, UUID) else user.id
        conversation, agent, history, budgets = await self._resolve(
            user_id, agent_id, conversation_id
        )
        self._check_budgets(budgets, started)

        failure: AgentFailure | None = None
        outcome: RunOutcome | None = None
        try:
            outcome = await self.runner.run(
                agent,
                message,
                history if conversation else [*context],
                knowledge=self.knowledge_for(user_id, agent),
            )
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
        if request_id is not None:
            reply = replace(reply, metadata={**reply.metadata, "request_id": request_id})

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

        alerts: list[BudgetAlert] = []

        async def on_commit(
            conn: WriteConnection, stored: list[MessageRecord], record: ConversationRecord
        ) -> None:
            alerts.extend(await self._charge(conn, budgets, reply, user_id))
            if idempotency is not None:
                await complete_key(conn, stored, record)

        stored, record = await self._commit(
            user_id,
            agent,
            conversation,
            [user_message, reply],
            reply.created_at,  # last_message_at: the newest message, as MongoDB's last_activity
            on_commit=on_commit,
        )
        self._after_run(alerts, reply, outcome, failure, started, request_id)
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

    def knowledge_for(self, user_id: UUID, agent: AgentRecord) -> KnowledgeSearch | None:
        """The agent's knowledge search for this caller: only bases the caller may read
        (their own or shared) are handed to the engine's query."""
        knowledge = self.knowledge
        if knowledge is None or knowledge.unavailable is not None or not agent.knowledge_base_ids:
            return None  # the agent's search then finds nothing; the turn still runs
        base_ids = list(agent.knowledge_base_ids)

        async def search(query: str) -> list[dict[str, Any]]:
            passages = await knowledge.search(user_id, base_ids, query)
            return [p.as_source() for p in passages]

        return search

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
        request_id: str | None = None,
    ) -> OpenedTurn:
        """A streamed turn's first half: the user's message committed (and written to MongoDB)
        before the model runs, so the stream's ``turn`` event can name it with its ``seq``.
        A used-up budget refuses it (402) before anything is written."""
        started = time.perf_counter()
        conversation, agent, history, budgets = await self._resolve(
            user_id, agent_id, conversation_id
        )
        self._check_budgets(budgets, started)
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
        model_history = history if conversation else [*context]
        return OpenedTurn(
            record,
            agent,
            history,
            stored[0],
            model_history,
            pending=stored,
            created=conversation is None,
            budgets=budgets,
            started=started,
            request_id=request_id,
        )

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
        started = time.perf_counter()
        conversation, agent, history, budgets = await self._resolve(user_id, None, conversation_id)
        self._check_budgets(budgets, started)
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
            budgets=budgets,
            started=started,
        )

    async def open_edit(
        self, user_id: UUID, conversation_id: UUID, message_id: UUID, *, content: str
    ) -> OpenedTurn:
        """Edit the last user message: a new user message (``is_edited``, ``edited_at``,
        ``supersedes`` the original) is committed with an audit row keeping the original
        text, then answered; the original and its answers stay, superseded."""
        started = time.perf_counter()
        conversation, agent, history, budgets = await self._resolve(user_id, None, conversation_id)
        self._check_budgets(budgets, started)
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
            budgets=budgets,
            started=started,
        )

    async def answer(
        self, opened: OpenedTurn, *, idempotency: IdempotencyClaim | None = None
    ) -> TurnResult:
        """Run the agent on an opened turn and close it (the non-streamed form)."""
        failure: AgentFailure | None = None
        outcome: RunOutcome | None = None
        try:
            outcome = await self.runner.run(
                opened.agent,
                opened.user_message.content,
                opened.model_history,
                knowledge=self.knowledge_for(opened.conversation.user_id, opened.agent),
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
        if opened.request_id is not None:
            reply = replace(reply, metadata={**reply.metadata, "request_id": opened.request_id})
        alerts: list[BudgetAlert] = []

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

        async def on_commit(
            conn: WriteConnection, stored: list[MessageRecord], record: ConversationRecord
        ) -> None:
            alerts.extend(await self._charge(conn, opened.budgets, reply, conversation.user_id))
            if idempotency is not None:
                await complete_key(conn, stored, record)

        stored, record = await self._commit(
            conversation.user_id,
            opened.agent,
            conversation,
            [reply],
            reply.created_at,
            on_commit=on_commit,
        )
        self._after_run(alerts, reply, outcome, failure, opened.started, opened.request_id)
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
        analytics = analytics_document(stored[0])
        pending = opened.pending
        if pending and pending[-1].seq + 1 != stored[0].seq:
            # another turn committed in between: two writes, so each acknowledges only its own
            # contiguous seqs (the relay fills whatever the guard refuses)
            await self._write_documents(record, pending, None, created=opened.created, agent_runs=0)
            pending = []
        in_mongo = await self._write_documents(
            record, [*pending, *stored], analytics, created=opened.created and bool(pending)
        )
        if failure is not None:
            raise AgentRunFailed(failure, conversation_id=record.id, user_message=user_message)
        assert outcome is not None
        return TurnResult(record, user_message, stored[0], outcome, in_mongo)

    def _check_budgets(self, budgets: list[BudgetRecord], started: float) -> None:
        """402 before the model is called, nothing written (the budgets came with the read)."""
        if self.budgets is None:
            return
        try:
            self.budgets.check(budgets)
        except BudgetExceeded as exc:
            metrics.BUDGET_REFUSALS.labels(exc.extra["budget"]["scope"]).inc()
            metrics.record_turn("budget", time.perf_counter() - started)
            raise

    async def _charge(
        self,
        conn: WriteConnection,
        budgets: list[BudgetRecord],
        reply: MessageRecord,
        user_id: UUID,
    ) -> list[BudgetAlert]:
        """Inside the reply's transaction: the run's spend on its budgets (none: nothing)."""
        if self.budgets is None or not budgets:
            return []
        return await self.budgets.charge(
            conn,
            budgets,
            tokens=int(reply.metadata.get("tokens_used") or 0),
            cost=Decimal(str(reply.metadata.get("cost") or 0)),
            actor_id=user_id,
            now=reply.created_at,
        )

    def _after_run(
        self,
        alerts: list[BudgetAlert],
        reply: MessageRecord,
        outcome: RunOutcome | None,
        failure: AgentFailure | None,
        started: float,
        request_id: str | None,
    ) -> None:
        """After the commit: budget warnings out, the turn counted in the metrics."""
        if alerts and self.budgets is not None:
            self.budgets.announce(alerts, request_id=request_id)
        metrics.record_turn(
            "success" if failure is None else failure.kind,
            time.perf_counter() - started,
            model=str(reply.metadata.get("model_used") or "unknown"),
            input_tokens=outcome.input_tokens if outcome else 0,
            output_tokens=outcome.output_tokens if outcome else 0,
            cost=outcome.cost if outcome else None,
        )

    async def _resolve(
        self, user_id: UUID, agent_id: UUID | None, conversation_id: UUID | None
    ) -> tuple[ConversationRecord | None, AgentRecord, list[MessageRecord], list[BudgetRecord]]:
        async with read_connection(self.engine) as conn:
            if conversation_id is None:
                if agent_id is None:
                    raise NotFound("agent_id is required to start a conversation")
                visible = await AgentReader(conn).get_visible_to_active(agent_id, user_id)
                if visible is None:
                    await self._require_active(conn, user_id)
                    raise NotFound(f"agent {agent_id} not found")
                agent, budgets = visible
                return None, agent, [], budgets
            found = await ConversationReader(conn).get_with_agent(conversation_id, user_id)
            if found is None:
                await self._require_active(conn, user_id)
                raise NotFound(f"conversation {conversation_id} not found")
            conversation, agent, caller_is_admin, budgets = found
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
            return conversation, agent, current(history), budgets  # replaced answers stay out

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
            if outcome.knowledge_searches:
                metadata["knowledge_searches"] = list(outcome.knowledge_searches)
                metadata["sources"] = list(outcome.sources)
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
        feedback=doc.get("feedback"),
    )


def _aware(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)
