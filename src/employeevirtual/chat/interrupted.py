"""Recovering turns a dead process left half done.

A streamed turn (and an edit) commits the user's message before the agent runs, and the answer
in a second commit. A process that dies between the two (a crash, a kill, a commit that failed
while the stores were away) leaves the user's message as the conversation's newest message
with nothing after it: no answer and no failure record. Every other turn commits its user
message together with the answer or the failure, so "the newest message is a user's, and older
than any turn can run" means exactly that.

``InterruptedTurns.sweep`` finds those conversations (from the last-message index, over a
bounded window) and records the failure as a failed run would: an ``error`` message (kind
``interrupted``) with the counters, in one transaction, only if nothing was committed since the
scan. MongoDB gets both messages from the relay (the user's message was waiting to go with the
answer), and the run's ``chat_analytics`` document with them. No extra write on the turn path.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from employeevirtual.chat.turn import now_ms
from employeevirtual.stores.records import MessageRecord
from employeevirtual.stores.sql.engine import read_connection, write_transaction
from employeevirtual.stores.sql.interrupted import Unanswered, UnansweredReader, close_unanswered
from employeevirtual.stores.sql.messages import MessageRepository
from employeevirtual.tasks import Background, Periodic

__all__ = ["INTERRUPTED", "InterruptedTurns"]

log = logging.getLogger(__name__)

INTERRUPTED = (
    "this turn was interrupted (the server stopped before the agent's answer was stored); "
    "send the message again"
)


class InterruptedTurns(Periodic):
    def __init__(
        self,
        engine: AsyncEngine,
        *,
        after_seconds: float,
        interval: float,
        window: timedelta = timedelta(days=7),
        batch: int = 100,
    ) -> None:
        """``after_seconds``: how old an unanswered user message must be (longer than any turn
        can run: the agent timeout plus a grace for the answer's commit)."""
        self.engine = engine
        self.after = timedelta(seconds=after_seconds)
        self.interval = interval
        self.window = window
        self.batch = batch
        self._background = Background("interrupted-turns")

    async def sweep(self, *, now: datetime | None = None) -> int:
        """Record the failure of every interrupted turn found; how many were recorded."""
        now = now or datetime.now(UTC)
        async with read_connection(self.engine) as conn:
            found = await UnansweredReader(conn).find(
                since=now - self.window, before=now - self.after, limit=self.batch
            )
        recorded = 0
        for unanswered in found:
            recorded += await self._record(unanswered)
        return recorded

    async def _record(self, unanswered: Unanswered) -> int:
        conversation = unanswered.conversation
        now = now_ms()
        async with write_transaction(self.engine) as conn:
            record = await close_unanswered(conn, conversation, now=now, error=INTERRUPTED)
            if record is None:
                return 0  # the turn was answered after all (or another sweep got there first)
            await MessageRepository(conn).insert_many(
                [
                    MessageRecord(
                        id=uuid.uuid4(),
                        conversation_id=conversation.id,
                        seq=record.message_count,
                        user_id=conversation.user_id,
                        agent_id=conversation.agent_id,
                        content=INTERRUPTED,
                        message_type="error",
                        metadata={
                            "model_used": unanswered.model,
                            "error": "interrupted",
                            "execution_time": 0.0,
                        },
                        created_at=now,
                    )
                ]
            )
        log.warning(
            "conversation %s: a turn was interrupted before its answer; failure recorded (seq %d)",
            conversation.id,
            record.message_count,
        )
        return 1

    async def _loop(self) -> None:
        while True:
            try:
                await self.sweep()
            except (SQLAlchemyError, OSError) as exc:
                log.warning("interrupted-turn sweep failed: %s", type(exc).__name__)
            await asyncio.sleep(self.interval)
