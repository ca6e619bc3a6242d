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
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncEngine

from employeevirtual.agents.knowledge import KnowledgeSearch
from employeevirtual.agents.runner import AgentFailure, AgentRunner, RunOutcome
from employeevirtual.agents.team import Team
from employeevirtual.analytics.budgets import BudgetService
from employeevirtual.chat.accounting import TurnAccounting
from employeevirtual.chat.commit import Resolved, resolve, store_messages, write_documents
from employeevirtual.chat.context import RecentContext
from employeevirtual.chat.conversations import record_audit_read
from employeevirtual.chat.handoff import commit_handoffs, handoffs_of, with_handoffs
from employeevirtual.chat.history import HistoryPage, find_by_dialogue, read_history
from employeevirtual.chat.idempotency import (
    IdempotencyClaim,
    IdempotencyKeys,
    StoredResponse,
    fingerprint,
)
from employeevirtual.chat.limits import TurnSlots
from employeevirtual.chat.responses import turn_response
from employeevirtual.chat.rework import open_edit, open_regenerate
from employeevirtual.chat.team import resolve_team
from employeevirtual.chat.turn import (
    OpenedTurn,
    TurnFailed,
    TurnOutcome,
    TurnRequest,
    TurnSucceeded,
    agent_reply,
    checked_edit,
    user_message,
)
from employeevirtual.knowledge.service import KnowledgeService
from employeevirtual.mcp.service import McpService
from employeevirtual.memory.service import MemoryService
from employeevirtual.memory.tools import MemoryTurn
from employeevirtual.request_context import current_request_id
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
        knowledge: KnowledgeService | None = None,
        budgets: BudgetService | None = None,
        mcp: McpService | None = None,
        memory: MemoryService | None = None,
        delegation_depth: int = 3,
        handoffs_per_turn: int = 2,
    ) -> None:
        """``after_commit``: called after each turn's SQL commit, before MongoDB is written.
        ``delegation_depth``, ``handoffs_per_turn``: the bounds of a turn's team (issue 13)."""
        self.engine = engine
        self.documents = documents
        self.runner = runner
        self.acks = acks
        self.keys = keys
        self.slots = slots
        self.context_messages = context_messages
        self.max_message_chars = max_message_chars
        self.after_commit = after_commit
        self.knowledge = knowledge
        self.mcp = mcp
        self.memory = memory
        self.accounting = TurnAccounting(budgets)
        self.context = RecentContext(messages=context_messages)
        self.delegation_depth = delegation_depth
        self.handoffs_per_turn = handoffs_per_turn

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
        try:
            async with self.slots.hold(user_id):
                return await self._turn(user_id, request, claim)
        except BaseException:
            # release on every failure, a failed COMMIT included (the response is set inside
            # the transaction); release spares a key that did commit (it is complete)
            if claim is not None:
                await self.keys.release(claim)
            raise

    async def _turn(
        self, user_id: UUID, request: TurnRequest, claim: IdempotencyClaim | None
    ) -> TurnOutcome:
        started = time.perf_counter()
        read = await self.resolve(user_id, request)
        self.accounting.check(read.budgets, started)
        conversation, agent, history = read.conversation, read.agent, read.history
        model_history = history if conversation else [*request.context]
        run = await self._run(user_id, agent, request.message, model_history, conversation)
        conversation_id = conversation.id if conversation else uuid.uuid4()
        asked = user_message(user_id, conversation_id, request.message)
        reply = agent_reply(user_id, agent, conversation_id, run, extra=_tag(request.request_id))
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
        async with write_transaction(self.engine) as conn:
            record, stored = await store_messages(conn, user_id, agent, conversation, [asked], None)
        self.context.advance(
            record.id,
            base_count=conversation.message_count if conversation else 0,
            base=history,
            added=stored,
            message_count=record.message_count,
        )
        model_history = history if conversation else [*request.context]
        return OpenedTurn(
            record,
            agent,
            history,
            stored[0],
            model_history,
            pending=stored,
            created=conversation is None,
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
            extra={**metadata, **(extra_metadata or {}), **_tag(opened.request_id)},
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
        run = await self._run(
            opened.conversation.user_id,
            opened.agent,
            opened.user_message.content,
            opened.model_history,
            opened.conversation,
        )
        return await self.close_turn(opened, run, claim=claim)

    # -- answering again ----------------------------------------------------------------------

    async def regenerate(
        self, user_id: UUID, conversation_id: UUID, *, claim: IdempotencyClaim | None = None
    ) -> TurnOutcome:
        """Answer the last user message again (``chat.rework``), holding a turn slot.
        ``claim``: as for ``turn``."""
        try:
            async with self.slots.hold(user_id):
                opened = await open_regenerate(self, user_id, conversation_id)
                return await self.answer(opened, claim=claim)
        except BaseException:
            if claim is not None:
                await self.keys.release(claim)
            raise

    async def edit(
        self,
        user_id: UUID,
        conversation_id: UUID,
        message_id: UUID,
        *,
        content: str,
        claim: IdempotencyClaim | None = None,
    ) -> TurnOutcome:
        """Edit the last user message and answer it again (``chat.rework``). ``claim``: as
        for ``turn``."""
        try:
            content = self.check_edit(content)
            async with self.slots.hold(user_id):
                opened = await open_edit(
                    self, user_id, conversation_id, message_id, content=content
                )
                return await self.answer(opened, claim=claim)
        except BaseException:
            if claim is not None:
                await self.keys.release(claim)
            raise

    def check_edit(self, content: str) -> str:
        """The rules for an edited message's text: InvalidInput (422) otherwise."""
        return checked_edit(content, max_chars=self.max_message_chars)

    async def resolve(self, user_id: UUID, request: TurnRequest) -> Resolved:
        """The turn's single read (``commit.resolve``)."""
        return await resolve(
            self.engine,
            self.context,
            user_id,
            agent_id=request.agent_id,
            conversation_id=request.conversation_id,
        )

    async def _run(
        self,
        user_id: UUID,
        agent: AgentRecord,
        message: str,
        history: list[MessageRecord],
        conversation: ConversationRecord | None,
    ) -> RunOutcome | AgentFailure:
        """The agent's run; a failure is returned, to be recorded like an answer."""
        memory = await self.memory_for(user_id, agent, conversation, message)
        try:
            return await self.runner.run(
                agent,
                message,
                history,
                knowledge=self.knowledge_for(user_id, agent),
                instructions=memory.instructions if memory else None,
                toolsets=[
                    *await self.toolsets_for(user_id, agent),
                    *(memory.toolsets if memory else ()),
                ],
                team=await self.team_for(user_id, agent),
            )
        except AgentFailure as failure:
            return failure

    async def team_for(self, user_id: UUID, agent: AgentRecord) -> Team | None:
        """The agents ``agent`` may ask or hand over to, for this caller (``chat.team``)."""
        return await resolve_team(
            self.engine,
            user_id,
            agent,
            max_depth=self.delegation_depth,
            max_handoffs=self.handoffs_per_turn,
            knowledge_for=lambda member: self.knowledge_for(user_id, member),
            tools_for=lambda member: self.toolsets_for(user_id, member),
        )

    async def toolsets_for(self, user_id: UUID, agent: AgentRecord) -> list[Any]:
        """The run's MCP tools: the agent's ``server/tool`` names on servers this caller may
        use (``mcp.service``), each call bounded."""
        if self.mcp is None:
            return []
        toolset = await self.mcp.toolset_for(user_id, agent.tools)
        return [] if toolset is None else [toolset]

    async def memory_for(
        self,
        user_id: UUID,
        agent: AgentRecord,
        conversation: ConversationRecord | None,
        message: str,
    ) -> MemoryTurn | None:
        """What the agent remembers for this turn (issue 18): None when it keeps no memory."""
        if self.memory is None:
            return None
        return await self.memory.prepare(user_id, agent, conversation, message)

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
        async with write_transaction(self.engine) as conn:
            record, stored = await store_messages(
                conn, user_id, agent, conversation, new, run.usage
            )
            if moves:
                record = await commit_handoffs(
                    conn,
                    record,
                    moves,
                    user_id=user_id,
                    now=stored[-1].created_at,
                    request_id=request_id,
                )
            outcome = _outcome(record, asked or stored[0], stored[-1], run)
            alerts = await self.accounting.charge(conn, budgets, stored[-1], run.usage, user_id)
            if self.memory is not None:  # what the agent chose to remember or forget
                await self.memory.apply(conn, agent, record, stored[-1])
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
        cached window no longer holds, it is dropped), MongoDB: ``stored`` with ``pending``
        (what the turn committed when it opened) in one write when their seqs are contiguous."""
        record = outcome.conversation
        if self.after_commit is not None:
            self.after_commit(record)
        if history is None:
            self.context.forget(record.id)
        else:
            self.context.advance(
                record.id,
                base_count=before.message_count if before else 0,
                base=history,
                added=stored,
                message_count=record.message_count,
            )
        created = before is None if created is None else created
        pending = pending or []
        if pending and pending[-1].seq + 1 != stored[0].seq:
            # another turn committed in between: two writes, so each acknowledges only its own
            # contiguous seqs (the relay fills whatever the guard refuses)
            await write_documents(self.documents, self.acks, record, pending, None, created=created)
            pending = []
        in_mongo = await write_documents(
            self.documents,
            self.acks,
            record,
            [*pending, *stored],
            outcome.usage,
            created=created and (bool(pending) or before is None),
        )
        return replace(outcome, stored_in_mongodb=in_mongo)

    # -- history ------------------------------------------------------------------------------

    async def history(
        self,
        user: UserRecord,
        conversation_id: UUID,
        *,
        limit: int,
        before: int | None,
        include_superseded: bool = False,
        client_ip: str | None = None,
    ) -> HistoryPage:
        """A page of messages, newest page first, oldest first within it; MongoDB when it has
        every message of the page, SQL otherwise (``history.read_history``). An admin's read
        of someone else's conversation is audited before the page is returned."""
        page = await read_history(
            self.engine,
            self.documents,
            user,
            conversation_id,
            limit=limit,
            before=before,
            include_superseded=include_superseded,
        )
        await record_audit_read(
            self.engine, user, page.conversation, what="messages", client_ip=client_ip
        )
        return page


def _tag(request_id: str | None) -> dict[str, str]:
    """The request id in the reply's metadata (it reaches the run's analytics)."""
    return {} if request_id is None else {"request_id": request_id}


def _outcome(
    record: ConversationRecord,
    asked: MessageRecord,
    reply: MessageRecord,
    run: RunOutcome | AgentFailure,
) -> TurnOutcome:
    if isinstance(run, AgentFailure):
        return TurnFailed(
            record, asked, reply, run.usage, kind=run.kind, request_id=current_request_id()
        )
    return TurnSucceeded(record, asked, reply, run.usage)
