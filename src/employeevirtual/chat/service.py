"""The chat turn, top to bottom: the one place that orders a turn's writes across stores.

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

import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import replace
from functools import partial
from typing import Any
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncEngine

from employeevirtual.agents.runner import AgentFailure, RunOutcome
from employeevirtual.analytics.budgets import BudgetService
from employeevirtual.chat.accounting import TurnAccounting
from employeevirtual.chat.commit import Resolved, resolve, store_messages, write_turn_documents
from employeevirtual.chat.context import RecentContext, left_by
from employeevirtual.chat.handoff import commit_handoffs, handoffs_of, with_handoffs
from employeevirtual.chat.history import find_by_dialogue
from employeevirtual.chat.idempotency import (
    IdempotencyClaim,
    IdempotencyKeys,
    StoredResponse,
    fingerprint,
)
from employeevirtual.chat.limits import TurnSlots
from employeevirtual.chat.responses import turn_response
from employeevirtual.chat.rework import Edit, Rework, open_rework
from employeevirtual.chat.running import AgentRuns, recorded
from employeevirtual.chat.turn import (
    OpenedTurn,
    TurnOutcome,
    TurnRequest,
    agent_reply,
    checked_edit,
    outcome_of,
    request_tag,
    user_message,
)
from employeevirtual.memory.service import MemoryService
from employeevirtual.stores.mongo.documents import DocumentStore
from employeevirtual.stores.records import (
    AgentRecord,
    BudgetRecord,
    ConversationRecord,
    MessageRecord,
    UserRecord,
)
from employeevirtual.stores.sql.engine import write_transaction
from employeevirtual.sync.acks import SyncAcks

__all__ = ["ChatService"]

ROUTE = "POST /api/chat/agent"  # what an Idempotency-Key's fingerprint is taken for


class ChatService:
    def __init__(
        self,
        *,
        engine: AsyncEngine,
        documents: DocumentStore,
        runs: AgentRuns,
        acks: SyncAcks,
        keys: IdempotencyKeys,
        slots: TurnSlots,
        context_messages: int,
        max_message_chars: int,
        after_commit: Callable[[ConversationRecord], None] | None = None,
        budgets: BudgetService | None = None,
        memory: MemoryService | None = None,
        max_conversations: int | None = None,
    ) -> None:
        """``runs``: the agent's runs (``chat.running``). ``after_commit``: called after each
        turn's SQL commit, before MongoDB is written. ``max_conversations``: conversations one
        user may keep (None: no cap); a turn that would start one more is a 409."""
        self.engine = engine
        self.documents = documents
        self.acks = acks
        self.keys = keys
        self.slots = slots
        self.context_messages = context_messages
        self.max_message_chars = max_message_chars
        self.after_commit = after_commit
        self.memory = memory
        self.accounting = TurnAccounting(budgets)
        self.context = RecentContext(messages=context_messages)
        self.runs = runs
        self.max_conversations = max_conversations
        # a turn's messages and counters in SQL, under the per-user conversation cap
        self.store = partial(store_messages, max_conversations=max_conversations)

    # -- the turn -----------------------------------------------------------------------------

    def request(
        self,
        message: str | None,
        *,
        agent_id: UUID | None,
        conversation_id: UUID | None,
        context: Sequence[MessageRecord] = (),
        request_id: str | None = None,
    ) -> TurnRequest:
        """The message rules: InvalidInput (422) for a request no turn can answer."""
        return TurnRequest.checked(
            message,
            agent_id=agent_id,
            conversation_id=conversation_id,
            max_chars=self.max_message_chars,
            context=context,
            request_id=request_id,
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
        async with self.keys.released_on_failure(claim), self.slots.hold(user_id):
            return await self._turn(user_id, request, claim)

    async def _turn(
        self, user_id: UUID, request: TurnRequest, claim: IdempotencyClaim | None
    ) -> TurnOutcome:
        started = time.perf_counter()
        read = await self.resolve(user_id, request)
        self.accounting.check(read.budgets, started)
        conversation, agent, history = read.conversation, read.agent, read.history
        model_history = history if conversation else [*request.context]
        run = await recorded(
            self.runs.start(user_id, agent, request.message, model_history, conversation)
        )
        conversation_id = conversation.id if conversation else uuid.uuid4()
        asked = user_message(user_id, conversation_id, request.message)
        reply = agent_reply(
            user_id, agent, conversation_id, run, extra=request_tag(request.request_id)
        )
        outcome, stored = await self._commit_turn(
            user_id,
            agent,
            conversation,
            [asked, reply],
            run,
            claim=claim,
            budgets=read.budgets,
            started=started,
            request_id=request.request_id,
        )
        return await self._finish(outcome, conversation, history, stored)

    async def open_turn(self, user_id: UUID, request: TurnRequest) -> OpenedTurn:
        """A streamed turn's first half: the user's message committed before the model runs,
        so the stream's ``turn`` event can name it with its ``seq`` (MongoDB gets it with the
        reply: one write per turn).
        The caller holds the turn slot (``slots.hold``). A used-up budget refuses it (402)
        before anything is written."""
        started = time.perf_counter()
        read = await self.resolve(user_id, request)
        self.accounting.check(read.budgets, started)
        conversation, agent, history = read.conversation, read.agent, read.history
        conversation_id = conversation.id if conversation else uuid.uuid4()
        asked = user_message(user_id, conversation_id, request.message)
        # a conversation that exists: its turn's write is one statement (on PostgreSQL)
        single = conversation is not None
        async with write_transaction(self.engine, single_statement=single) as conn:
            record, stored = await self.store(conn, user_id, agent, conversation, [asked], None)
        self.context.remember(record, conversation, history, stored)
        model_history = history if conversation else [*request.context]
        return OpenedTurn(
            record,
            agent,
            history,
            stored[0],
            model_history,
            pending=stored,
            created=conversation is None,
            # a row read back past the user's message: the window lacks what came after it
            advance_cache=left_by(record, stored),
            budgets=read.budgets,
            started=started,
            request_id=request.request_id,
        )

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
        metadata = dict(opened.reply_metadata)
        if isinstance(run, AgentFailure) and metadata.get("regenerated"):
            metadata.pop("supersedes", None)  # a failed regeneration replaces nothing
        reply = agent_reply(
            conversation.user_id,
            opened.agent,
            conversation.id,
            run,
            extra={**metadata, **(extra_metadata or {}), **request_tag(opened.request_id)},
        )
        outcome, stored = await self._commit_turn(
            conversation.user_id,
            opened.agent,
            conversation,
            [reply],
            run,
            claim=claim,
            budgets=opened.budgets,
            started=opened.started,
            request_id=opened.request_id,
            asked=opened.user_message,
        )
        base = [*opened.history, opened.user_message][-self.context_messages :]
        return await self._finish(
            outcome,
            conversation,
            base if opened.advance_cache else None,
            stored,
            pending=opened.pending,
            created=opened.created,
        )

    async def answer(
        self, opened: OpenedTurn, *, claim: IdempotencyClaim | None = None
    ) -> TurnOutcome:
        """Run the agent on an opened turn and close it (the non-streamed form)."""
        run = await recorded(
            self.runs.start(
                opened.conversation.user_id,
                opened.agent,
                opened.user_message.content,
                opened.model_history,
                opened.conversation,
            )
        )
        return await self.close_turn(opened, run, claim=claim)

    # -- answering again ----------------------------------------------------------------------

    async def rework(
        self, user_id: UUID, rework: Rework, *, claim: IdempotencyClaim | None = None
    ) -> TurnOutcome:
        """Answer again (``chat.rework``): the last answer regenerated, or the last user message
        edited (its text checked first) and answered, holding a turn slot. ``claim``: as for
        ``turn``."""
        async with self.keys.released_on_failure(claim):
            rework = self.checked(rework)
            async with self.slots.hold(user_id):
                return await self.answer(await open_rework(self, user_id, rework), claim=claim)

    def checked(self, rework: Rework) -> Rework:
        """An edit's text under the message rules: InvalidInput (422) otherwise."""
        if isinstance(rework, Edit):
            content = checked_edit(rework.content, max_chars=self.max_message_chars)
            return replace(rework, content=content)
        return rework

    async def resolve(self, user_id: UUID, request: TurnRequest) -> Resolved:
        """The turn's single read (``commit.resolve``)."""
        return await resolve(
            self.engine,
            self.context,
            user_id,
            agent_id=request.agent_id,
            conversation_id=request.conversation_id,
            max_conversations=self.max_conversations,
        )

    async def _commit_turn(
        self,
        user_id: UUID,
        agent: AgentRecord,
        conversation: ConversationRecord | None,
        new: list[MessageRecord],
        run: RunOutcome | AgentFailure,
        *,
        claim: IdempotencyClaim | None,
        budgets: list[BudgetRecord],
        started: float,
        request_id: str | None,
        asked: MessageRecord | None = None,
    ) -> tuple[TurnOutcome, list[MessageRecord]]:
        """One SQL transaction: the turn's new messages and counters, its spend on the budgets,
        and the Idempotency-Key completed with the response its outcome answers; then the
        budget warnings and the metrics. ``asked``: the user's message when it was committed
        before (a streamed turn); otherwise it is the first of ``new``. A turn that moves the
        conversation to another agent (``chat.handoff``) moves it in the same transaction."""
        moves = handoffs_of(conversation, agent, run)
        if moves:
            new = [*new[:-1], with_handoffs(new[-1], moves)]
        # nothing to write but the messages and counters of a conversation that exists: one
        # statement (on PostgreSQL), committed without BEGIN/COMMIT
        single = (
            conversation is not None
            and not moves
            and claim is None
            and not self.accounting.charges(budgets)
            and (self.memory is None or not self.memory.writes(new[-1]))
        )
        async with write_transaction(self.engine, single_statement=single) as conn:
            if self.memory is not None:  # what the agent chose to remember or forget
                await self.memory.apply(conn, agent, user_id, new[-1])
            record, stored = await self.store(conn, user_id, agent, conversation, new, run.usage)
            if moves:
                record = await commit_handoffs(
                    conn,
                    record,
                    moves,
                    user_id=user_id,
                    now=stored[-1].created_at,
                    request_id=request_id,
                )
            outcome = outcome_of(record, asked or stored[0], stored[-1], run)
            alerts = await self.accounting.charge(conn, budgets, stored[-1], run.usage, user_id)
            if claim is not None:
                await claim.complete(conn, turn_response(outcome), record.id)
        if self.memory is not None:  # a summary update, in the background, when one is due
            self.memory.committed(agent, record)
        kind = run.kind if isinstance(run, AgentFailure) else "success"
        self.accounting.record(alerts, kind, run.usage, started, request_id)
        return outcome, stored

    async def _finish(
        self,
        outcome: TurnOutcome,
        before: ConversationRecord | None,
        history: list[MessageRecord] | None,
        stored: list[MessageRecord],
        *,
        pending: list[MessageRecord] | None = None,
        created: bool | None = None,
    ) -> TurnOutcome:
        """After the commit: the post-commit hook, the context cache (``history`` None: the
        cached window no longer holds, it is dropped), MongoDB (``pending``: what the turn
        committed when it opened, written with ``stored``)."""
        record = outcome.conversation
        if self.after_commit is not None:
            self.after_commit(record)
        self.context.remember(record, before, history, stored)
        in_mongo = await write_turn_documents(
            self.documents,
            self.acks,
            record,
            stored,
            outcome.usage,
            pending=pending or [],
            created=before is None if created is None else created,
            before=before,
        )
        return replace(outcome, stored_in_mongodb=in_mongo)
