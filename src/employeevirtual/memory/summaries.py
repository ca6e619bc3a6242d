"""Rolling conversation summaries, written in the background after a turn (never on its path).

When a conversation has grown ``every`` messages past what the summary covers plus the agent's
context window, a task folds the messages that left the window into the summary, at most
``batch`` messages per model call. One pass reads at most ``pass_messages`` messages; a long
catch-up (a conversation imported whole, a summary that failed for a while) goes on in further
passes, each queued behind the others waiting for a slot, so one conversation cannot hold a slot
for long. Messages a regenerated answer or an edit replaced (``stores.supersede``) are left out:
each batch is read with the ``LOOKAHEAD`` messages after it, where what replaces them sits. Each
update is a new version in SQL
(the truth), then ``context.conversation_state`` in MongoDB (a failure there is the relay's to
carry); that the copy landed is acknowledged in the turns' batched acks (``SyncAcks``), not in a
transaction of its own. A failure of the model or a store is logged and retried later for
that conversation; turns never wait for a summary and never fail because of one: a summary that
is behind only covers less.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID

from opentelemetry import trace
from pydantic_ai.direct import model_request
from pydantic_ai.exceptions import UnexpectedModelBehavior
from pydantic_ai.messages import ModelRequest, UserPromptPart
from pydantic_ai.models import Model
from pymongo.errors import PyMongoError
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from employeevirtual.agents.models import OFFLINE_MODEL, ModelRegistry
from employeevirtual.memory.extractive import extractive_summary
from employeevirtual.stores.mongo.memory import MemoryDocuments
from employeevirtual.stores.records import MessageRecord
from employeevirtual.stores.sql.engine import read_connection, write_transaction
from employeevirtual.stores.sql.memory import MemoryReader, MemoryRepository
from employeevirtual.stores.sql.messages import MessageReader
from employeevirtual.stores.sql.summaries import SummaryRecord
from employeevirtual.stores.supersede import LOOKAHEAD, superseded_ids
from employeevirtual.sync.acks import SyncAcks
from employeevirtual.tasks import detached

__all__ = ["Summarizer", "SummaryStats", "SummaryWorker"]

log = logging.getLogger(__name__)
_tracer = trace.get_tracer("employeevirtual.memory")

PAUSE = -1  # a pass read all it may: the next pass goes on
MESSAGE_CHARS = 2000  # of one message, given to the summarizing model
INSTRUCTIONS = (
    "You keep the running summary of a conversation between a person and an AI assistant, so "
    "that the assistant remembers what scrolled out of its context. Keep what the assistant "
    "will need later: facts the person stated about themselves, names, numbers, dates, "
    "decisions, preferences and open tasks; drop pleasantries. Write plain sentences, no "
    "preamble, at most {max_chars} characters."
)


class Summarizer:
    """A summary update by the operator's model (``model``; the agent's own when None); the
    ``offline`` model makes a deterministic extractive summary instead of calling anything.

    One model request (``pydantic_ai.direct.model_request``), not an agent run: no tools, no
    output validation, nothing to retry, so the agent graph around the request only cost CPU
    (and the one-request limit an agent run needed holds by construction).
    The request is bounded by ``timeout_seconds`` (``TimeoutError``, of which the agent's
    ``RunTimedOut`` was a subclass); the model's own settings and its client's retries apply as
    in a run; an answer with no text is an error (``UnexpectedModelBehavior``; an agent asked
    again, over the one-request limit), never an empty summary. Tracing
    (``EV_OTEL_ENABLED``, ``trace``): the model's ``chat <model>`` span comes from Pydantic AI's
    instrumentation as before, inside a ``conversation-summary`` span of ours in place of the
    agent run span (``invoke_agent conversation-summary``) an agent made."""

    def __init__(
        self,
        models: ModelRegistry,
        *,
        model: str | None,
        max_chars: int,
        timeout_seconds: float,
        trace: bool = False,
    ) -> None:
        self.models = models
        self.model = model
        self.max_chars = max_chars
        self.timeout_seconds = timeout_seconds
        self.trace = trace
        self.instructions = INSTRUCTIONS.format(max_chars=max_chars)

    def model_for(self, agent_model: str) -> str:
        return self.model or agent_model

    async def summarize(
        self, previous: str, messages: Sequence[MessageRecord], *, model: str
    ) -> str:
        dialogue = [(m.seq, m.message_type, m.content) for m in messages]
        if model == OFFLINE_MODEL:
            return extractive_summary(previous, dialogue, max_chars=self.max_chars)
        lines = [f"#{seq} {who}: {text[:MESSAGE_CHARS]}" for seq, who, text in dialogue]
        prompt = (
            f"Summary so far:\n{previous or '(none yet)'}\n\n"
            f"Messages to add (oldest first):\n" + "\n".join(lines) + "\n\nThe updated summary:"
        )
        request = ModelRequest(parts=[UserPromptPart(prompt)], instructions=self.instructions)
        built = self.models.get(model)
        if not self.trace:
            return await self._request(built, request)
        with _tracer.start_as_current_span(
            "conversation-summary",
            attributes={"gen_ai.request.model": model, "ev.summary.messages": len(dialogue)},
        ):
            return await self._request(built, request)

    async def _request(self, model: Model, request: ModelRequest) -> str:
        async with asyncio.timeout(self.timeout_seconds):
            response = await model_request(model, [request])
        text = (response.text or "").strip()
        if not text:
            raise UnexpectedModelBehavior("the summary model answered no text")
        return text[: self.max_chars]


@dataclass
class SummaryStats:
    """What the background summaries cost this process (the bench reads it)."""

    scheduled: int = 0
    passes: int = 0  # update passes run (a long catch-up takes several)
    read: int = 0  # messages read by the passes (what they fold in and the lookahead)
    versions: int = 0  # summary versions written
    messages: int = 0  # messages folded in
    failures: int = 0
    seconds: float = 0.0  # wall time of the update tasks


class SummaryWorker:
    def __init__(
        self,
        engine: AsyncEngine,
        copies: MemoryDocuments,
        acks: SyncAcks,
        summarizer: Summarizer,
        *,
        window: int,
        every: int,
        batch: int,
        pass_messages: int,
        keep: int,
        concurrency: int,
        retry_seconds: float,
        max_known: int = 10_000,
    ) -> None:
        self.engine = engine
        self.copies = copies
        self.acks = acks
        self.summarizer = summarizer
        self.window = window
        self.every = every
        self.batch = batch
        self.pass_messages = pass_messages
        self.keep = keep
        self.retry_seconds = retry_seconds
        self.max_known = max_known
        self.stats = SummaryStats()
        self._covered: OrderedDict[UUID, int] = OrderedDict()  # what each summary covers
        self._retry_at: dict[UUID, float] = {}
        self._running: dict[UUID, asyncio.Task[bool]] = {}
        # the message count of the last turn committed while its conversation's pass ran
        self._committed_during: dict[UUID, int] = {}
        self._slots = asyncio.Semaphore(concurrency)
        self._stopping = False

    def note(self, conversation_id: UUID, covered_seq: int) -> None:
        """What a turn read: the conversation's summary covers 1..``covered_seq``."""
        self._covered[conversation_id] = covered_seq
        self._covered.move_to_end(conversation_id)
        while len(self._covered) > self.max_known:
            self._covered.popitem(last=False)

    def due(self, conversation_id: UUID, message_count: int) -> bool:
        edge = message_count - self.window  # messages up to here have left the window
        if edge <= 0:
            return False
        covered = self._covered.get(conversation_id)
        return covered is None or edge - covered >= self.every

    def committed(self, conversation_id: UUID, message_count: int, model: str) -> None:
        """After a turn's commit: start a summary update when one is due (not awaited). While a
        pass runs, the turn is kept for its end: a pass does not read the state again after its
        last batch to find the messages committed meanwhile."""
        if conversation_id in self._running:
            during = self._committed_during.get(conversation_id, 0)
            self._committed_during[conversation_id] = max(during, message_count)
        else:
            self._start_if_due(conversation_id, message_count, self.summarizer.model_for(model))

    def _start_if_due(self, conversation_id: UUID, message_count: int, model: str) -> None:
        if not self.due(conversation_id, message_count):
            return
        if self._retry_at.get(conversation_id, 0.0) > time.monotonic():
            return
        self._start(conversation_id, model)

    def _start(self, conversation_id: UUID, model: str) -> None:
        self.stats.scheduled += 1
        # the update is not part of the request that happened to start it
        task = detached(self.update(conversation_id, model), name=f"summary-{conversation_id}")
        self._running[conversation_id] = task
        task.add_done_callback(lambda t: self._ended(conversation_id, model, t))

    def _ended(self, conversation_id: UUID, model: str, task: asyncio.Task[bool]) -> None:
        self._running.pop(conversation_id, None)
        committed = self._committed_during.pop(conversation_id, None)
        if self._stopping or task.cancelled():
            return
        if task.result():
            self._start(conversation_id, model)  # the rest of a long catch-up: another pass
        elif committed is not None:
            self._start_if_due(conversation_id, committed, model)

    async def update(self, conversation_id: UUID, model: str) -> bool:
        """One pass: fold what left the window into the summary, reading at most
        ``pass_messages`` messages. True when it stopped at that bound with more to fold (the
        next pass goes on from there); never raises."""
        started = time.perf_counter()
        self.stats.passes += 1
        more = False
        try:
            async with self._slots:
                budget = self.pass_messages
                while (read := await self._step(conversation_id, model, budget)) is not None:
                    if read == PAUSE:
                        more = True
                        break
                    budget -= read
            self._retry_at.pop(conversation_id, None)
        except Exception as exc:  # a summary never breaks anything else: it is retried later
            self.stats.failures += 1
            self._retry_at[conversation_id] = time.monotonic() + self.retry_seconds
            log.warning(
                "summary of conversation %s failed (%s: %s); turns go on without it, retried "
                "in %g s",
                conversation_id,
                type(exc).__name__,
                str(exc)[:200],
                self.retry_seconds,
            )
        finally:
            self.stats.seconds += time.perf_counter() - started
        return more

    async def _step(self, conversation_id: UUID, model: str, budget: int) -> int | None:
        """One batch folded in: the messages read; ``PAUSE`` when more is due than ``budget``
        (messages this pass may still read) allows; None when there is nothing (more) to do,
        by the state this step read (turns committed since are ``committed``'s to schedule)."""
        async with read_connection(self.engine) as conn:
            state = await MemoryReader(conn).summary_state(conversation_id)
            if state is None:  # the conversation is gone
                return None
            current = state.current
            covered = current.covered_seq if current else 0
            edge = state.message_count - self.window
            self.note(conversation_id, covered)
            if edge - covered < self.every:
                return None
            span = min(edge - covered, self.batch, budget - LOOKAHEAD)
            if span < 1:
                return PAUSE
            end = covered + span
            # the batch and the few after it: what replaces a message sits just after it
            rows = await MessageReader(conn).after(
                conversation_id, after_seq=covered, limit=span + LOOKAHEAD
            )
        self.stats.read += len(rows)
        gone = superseded_ids(rows)
        dialogue = [
            m
            for m in rows
            if m.seq <= end and m.message_type in ("user", "agent") and m.id not in gone
        ]
        content = await self.summarizer.summarize(
            current.content if current else "", dialogue, model=model
        )
        summary = SummaryRecord(
            conversation_id=conversation_id,
            version=(current.version if current else 0) + 1,
            user_id=state.user_id,
            covered_seq=end,
            content=content,
            model=model,
            messages=len(dialogue),
            created_at=datetime.now(UTC),
        )
        try:
            async with write_transaction(self.engine) as conn:
                await MemoryRepository(conn).add_summary(summary, keep=self.keep)
        except IntegrityError:
            return None  # another process wrote this version: it carries on from there
        self.note(conversation_id, end)
        self.stats.versions += 1
        self.stats.messages += len(dialogue)
        await self._copy(summary)
        if edge - end < self.every:
            return None  # nothing more was due: no second read of the state to find that out
        return len(rows)

    async def _copy(self, summary: SummaryRecord) -> None:
        """The MongoDB copy after the SQL commit; its acknowledgement (``synced_at``) is batched
        with the turns' (``SyncAcks``): a lost one costs the relay an idempotent replay."""
        try:
            await self.copies.set_state(summary)
        except PyMongoError as exc:
            log.warning(
                "summary of %s: MongoDB write failed (%s); left to the relay",
                summary.conversation_id,
                type(exc).__name__,
            )
            return
        self.acks.ack_summary(summary.conversation_id, summary.version)

    async def drain(self, timeout: float = 30.0) -> None:  # noqa: ASYNC109
        """Wait for the updates running now (and those they make due) to end."""
        async with asyncio.timeout(timeout):
            while self._running:
                await asyncio.gather(*list(self._running.values()), return_exceptions=True)

    async def stop(self) -> None:
        self._stopping = True
        for task in list(self._running.values()):
            task.cancel()
        await asyncio.gather(*list(self._running.values()), return_exceptions=True)
