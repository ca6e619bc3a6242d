"""The relay: replays into MongoDB what SQL committed and MongoDB does not have yet.

A conversation owes MongoDB messages while ``synced_seq < message_count``. A pass takes the
conversations idle for ``grace`` seconds (so a turn in flight acknowledges its own write), copies
their missing messages in bounded batches (``insert_messages`` is idempotent), rebuilds the
conversation document from SQL (guarded: a newer turn is never clobbered) and moves ``synced_seq``
forward with a compare-and-set. The runs' ``chat_analytics`` documents are rebuilt from the
replies (same ids: idempotent too). Several relays may run at once: on PostgreSQL and SQL
Server each claims its conversations with ``SKIP LOCKED``/``READPAST`` and holds them for the
pass; on SQLite (one writer at a time, so no lock is held across MongoDB calls) the
compare-and-set keeps a second relay harmless, only wasteful. There a delete or an erasure may
remove a conversation from both stores between the pass's read and its writes: a read after
the writes finds it gone and takes back what the pass wrote (``take_back_if_gone``). A
deactivated owner's conversations are copied as any other: deactivation is no erasure, and
SQL still holds them.

The same loop watches the lag: when the oldest unsynced message is older than ``alert_seconds`` it
logs an ERROR and writes a ``system_logs`` document (again every ``alert_seconds`` while it lasts).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo.errors import PyMongoError
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from employeevirtual.settings import Settings
from employeevirtual.stores.mongo.analytics_shapes import analytics_document, delegation_documents
from employeevirtual.stores.mongo.documents import DocumentStore
from employeevirtual.stores.mongo.memory import MemoryDocuments
from employeevirtual.stores.mongo.shapes import message_document
from employeevirtual.stores.records import ConversationRecord
from employeevirtual.stores.sql.engine import (
    Connection,
    WriteConnection,
    read_connection,
    write_transaction,
)
from employeevirtual.stores.sql.feedback import FeedbackReader, FeedbackRepository
from employeevirtual.stores.sql.messages import MessageReader
from employeevirtual.stores.sql.sync import SKIP_LOCKED_DIALECTS, SyncReader, SyncRepository
from employeevirtual.sync.memory import MemorySync, conversation_context
from employeevirtual.sync.repair import take_back_if_gone
from employeevirtual.tasks import Background, raise_if_cancelling

__all__ = ["Relay", "RelayPass", "SyncLag"]

log = logging.getLogger(__name__)

Reader = Callable[[], AbstractAsyncContextManager[Connection]]
Writer = Callable[[], AbstractAsyncContextManager[WriteConnection]]
FAILURES = (PyMongoError, SQLAlchemyError, OSError)


@dataclass(frozen=True, slots=True)
class RelayPass:
    conversations: int  # claimed
    advanced: int  # whose synced_seq moved (the others: a newer document guarded itself)
    messages: int


@dataclass(frozen=True, slots=True)
class SyncLag:
    oldest_unsynced_at: datetime | None
    conversations: int
    seconds: float


class Relay:
    def __init__(
        self,
        engine: AsyncEngine,
        documents: DocumentStore,
        *,
        batch_size: int = 200,
        claim_size: int = 20,
        grace_seconds: float = 2.0,
        interval: float = 1.0,
        max_backoff: float = 30.0,
        alert_seconds: float = 60.0,
    ) -> None:
        self.engine = engine
        self.documents = documents
        self.batch_size = batch_size
        self.claim_size = claim_size
        self.grace = timedelta(seconds=grace_seconds)
        self.interval = interval
        self.max_backoff = max_backoff
        self.alert_seconds = alert_seconds
        self.lag: SyncLag | None = None
        self._alerted_at: float | None = None
        self._background = Background("sync-relay")
        self.memory = MemorySync(engine, MemoryDocuments(documents.db), batch=batch_size)

    @classmethod
    def from_settings(
        cls, settings: Settings, engine: AsyncEngine, documents: DocumentStore
    ) -> Relay:
        return cls(
            engine,
            documents,
            batch_size=settings.sync_batch_size,
            grace_seconds=settings.sync_grace_seconds,
            interval=settings.sync_interval_seconds,
            max_backoff=settings.sync_max_backoff_seconds,
            alert_seconds=settings.sync_alert_seconds,
        )

    @property
    def locks_rows(self) -> bool:
        return self.engine.dialect.name in SKIP_LOCKED_DIALECTS

    # -- one pass -----------------------------------------------------------------------------

    async def run_once(self, *, now: datetime | None = None) -> RelayPass:
        """Replay up to ``claim_size`` conversations. Raises when a store fails, after keeping
        what was done before the failure: the loop then backs off."""
        idle_before = (now or datetime.now(UTC)) - self.grace
        if self.locks_rows:
            async with write_transaction(self.engine) as conn:
                claimed = await SyncRepository(conn).claim_unsynced(
                    idle_before=idle_before, limit=self.claim_size
                )
                if claimed:
                    await self.documents.ping()  # fail fast, before holding locks for long

                @asynccontextmanager
                async def same() -> AsyncIterator[WriteConnection]:
                    yield conn

                result, error = await self._replay_all(claimed, read=same, write=same)
        else:
            async with read_connection(self.engine) as read_conn:
                claimed = await SyncReader(read_conn).unsynced(
                    idle_before=idle_before, limit=self.claim_size
                )
            result, error = await self._replay_all(
                claimed,
                read=lambda: read_connection(self.engine),
                write=lambda: write_transaction(self.engine),
            )
        if error is not None:
            raise error
        await self.carry_feedback(idle_before)
        await self.memory.carry(older_than=idle_before)  # summaries, memories (issue 18)
        return result

    async def carry_feedback(self, idle_before: datetime) -> int:
        """Feedback SQL holds and MongoDB has not got (MongoDB was away when it was given):
        written again (idempotent ``$set``) and marked synced, that version only."""
        async with read_connection(self.engine) as conn:
            owed = await FeedbackReader(conn).unsynced(
                older_than=idle_before, limit=self.batch_size
            )
        carried = 0
        for record in owed:
            if await self.documents.set_feedback(record.message_id, record.view()):
                async with write_transaction(self.engine) as conn:
                    carried += await FeedbackRepository(conn).mark_synced(
                        record, now=datetime.now(UTC)
                    )
        return carried

    async def _replay_all(
        self, claimed: list[ConversationRecord], *, read: Reader, write: Writer
    ) -> tuple[RelayPass, PyMongoError | None]:
        messages = advanced = 0
        error: PyMongoError | None = None
        for conversation in claimed:
            try:
                copied, moved = await self.replay(conversation, read=read, write=write)
            except PyMongoError as exc:  # keep the conversations done so far (same transaction)
                error = exc
                break
            messages += copied
            advanced += moved
        return RelayPass(len(claimed), advanced, messages), error

    async def replay(
        self, conversation: ConversationRecord, *, read: Reader, write: Writer
    ) -> tuple[int, bool]:
        """Copy one conversation's missing messages and rebuild its document. Returns how many
        messages were copied and whether ``synced_seq`` could move."""
        cid, last = conversation.id, conversation.message_count
        after, copied = conversation.synced_seq, 0
        while after < last:
            async with read() as conn:
                batch = await MessageReader(conn).after(
                    cid, after_seq=after, limit=min(self.batch_size, last - after)
                )
            if not batch:
                break
            await self.documents.insert_messages([message_document(m) for m in batch])
            runs = [doc for m in batch if (doc := analytics_document(m)) is not None]
            runs += [doc for m in batch for doc in delegation_documents(m)]
            await self.documents.insert_analytics_many(runs)
            # runs of days the rollups may have counted already: those days are rolled again
            today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
            late = [doc["timestamp"] for doc in runs if doc["timestamp"] < today]
            await self.documents.mark_rollups_dirty(late)
            after, copied = batch[-1].seq, copied + len(batch)
        async with read() as conn:
            window = await MessageReader(conn).page(
                cid, before_seq=last + 1, limit=self.documents.window
            )
            context = await conversation_context(conn, cid)
        applied = await self.documents.replace_conversation(conversation, window, context=context)
        # deleted or erased since it was read: only where no row lock held it (SQLite; the
        # claim's lock makes a delete wait for this pass elsewhere)
        if not self.locks_rows and await take_back_if_gone(read, self.documents, cid):
            return copied, False
        if applied and after >= last:
            async with write() as conn:
                await SyncRepository(conn).advance(cid, to_seq=last)
        return copied, applied

    # -- the lag and its alert ----------------------------------------------------------------

    async def measure_lag(self, *, now: datetime | None = None) -> SyncLag:
        async with read_connection(self.engine) as conn:
            backlog = await SyncReader(conn).backlog()
        now = now or datetime.now(UTC)
        oldest = backlog.oldest_unsynced_at
        seconds = max(0.0, (now - oldest).total_seconds()) if oldest else 0.0
        self.lag = SyncLag(oldest, backlog.conversations, seconds)
        return self.lag

    async def check_alert(self) -> None:
        lag = await self.measure_lag()
        loop = asyncio.get_running_loop()
        if lag.seconds <= self.alert_seconds:
            if self._alerted_at is not None:
                self._alerted_at = None
                log.warning("sync lag recovered: MongoDB has caught up with SQL")
                await self._system_log("WARNING", "sync_lag_recovered", "MongoDB caught up", lag)
            return
        if self._alerted_at is not None and loop.time() - self._alerted_at < self.alert_seconds:
            return
        self._alerted_at = loop.time()
        message = (
            f"sync lag alert: the oldest message not yet in MongoDB is {lag.seconds:.0f} s old "
            f"(limit {self.alert_seconds:g} s), {lag.conversations} conversation(s) behind"
        )
        log.error(message)
        await self._system_log("ERROR", "sync_lag", message, lag)

    async def _system_log(self, level: str, event: str, message: str, lag: SyncLag) -> None:
        details: dict[str, Any] = {
            "lag_seconds": round(lag.seconds, 3),
            "conversations": lag.conversations,
            "oldest_unsynced_at": lag.oldest_unsynced_at,
        }
        with contextlib.suppress(PyMongoError):  # MongoDB down is often why we are here
            await self.documents.log_system(
                level=level, event=event, message=message, details=details
            )

    # -- the loop -----------------------------------------------------------------------------

    async def run_forever(self) -> None:
        failures = 0
        next_alert_check = 0.0
        loop = asyncio.get_running_loop()
        while True:
            delay = self.interval
            try:
                result = await self.run_once()
                if failures:
                    log.info("relay recovered after %d failed pass(es)", failures)
                failures = 0
                if result.messages:
                    log.info(
                        "relay copied %d message(s) of %d conversation(s) to MongoDB",
                        result.messages,
                        result.conversations,
                    )
                if result.conversations == self.claim_size and result.advanced:
                    delay = 0.0  # more work waiting
            except FAILURES as exc:
                failures += 1
                delay = min(self.max_backoff, self.interval * 2**failures)
                delay *= random.uniform(0.5, 1.0)
                log.warning(
                    "relay pass failed (%s: %s); retrying in %.1f s",
                    type(exc).__name__,
                    str(exc)[:200],
                    delay,
                )
            if loop.time() >= next_alert_check:
                next_alert_check = loop.time() + self.interval
                try:
                    await self.check_alert()
                except FAILURES as exc:
                    log.warning("could not measure the sync lag: %s", type(exc).__name__)
            raise_if_cancelling()
            await asyncio.sleep(delay)

    async def drain(self, *, timeout: float = 60.0) -> None:  # noqa: ASYNC109
        """Pass until nothing idle is owed, or a pass moves nothing (the CLI's ``--once``)."""
        async with asyncio.timeout(timeout):
            while (await self.run_once()).advanced:
                pass

    def start(self) -> None:
        self._background.start(self.run_forever)

    async def stop(self) -> None:
        await self._background.stop()
