"""The reconciler: both stores compared conversation by conversation, and repaired from SQL.

SQL is the source of truth for messages and conversation metadata; MongoDB's counters are
recomputed from it. Conversations with a turn in the last ``grace`` seconds are left for the next
round. A quick round compares counts and counters (one aggregation per page of conversations) and
reads message ids only where the counts disagree; a deep round reads every id and also looks for
messages whose conversation is gone from SQL.

Inside the server (``run_forever``): a quick round with repair at start, then every ``interval``;
in between, every ``check_interval``, a loss check of two totals per store (the messages and
conversations SQL records as synced, against what MongoDB holds). MongoDB holding fewer than SQL
says it was given means it lost data (a storage directory deleted, a restore from an old
backup, a restarted SecantusDB): the relay would never copy them again (it works above
``synced_seq``), so a quick round with repair runs at once, and again after ``grace`` until one
comes back clean. ``request_check`` (called when the supervised SecantusDB restarts) does the
same. ``state`` is what readiness reports.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from pymongo.errors import PyMongoError
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from employeevirtual.settings import Settings
from employeevirtual.stores.mongo.documents import DocumentStore
from employeevirtual.stores.mongo.memory import MemoryDocuments
from employeevirtual.stores.records import ConversationRecord
from employeevirtual.stores.sql.engine import read_connection
from employeevirtual.stores.sql.feedback import FeedbackReader
from employeevirtual.stores.sql.memory import MemoryReader
from employeevirtual.stores.sql.messages import MessageReader
from employeevirtual.stores.sql.sync import SyncReader
from employeevirtual.stores.sql.totals import synced_totals
from employeevirtual.sync.drift import (
    Drift,
    ReconcileReport,
    RepairPlan,
    compare_summary,
    document_differences,
    span,
)
from employeevirtual.sync.memory import MemorySync
from employeevirtual.sync.repair import repair_conversation
from employeevirtual.tasks import Background, raise_if_cancelling

__all__ = ["CheckState", "Drift", "ReconcileReport", "Reconciler"]

log = logging.getLogger(__name__)


@dataclass(slots=True)
class CheckState:
    """The last checks, for readiness."""

    last_round_at: datetime | None = None
    last_round_drifts: int = 0
    last_round_unrepaired: int = 0
    rounds: int = 0
    repaired_total: int = 0
    last_totals_at: datetime | None = None
    missing_messages: int = 0  # MongoDB has fewer than SQL says it was given
    missing_conversations: int = 0
    last_error: str | None = None

    @property
    def drift(self) -> bool:
        return bool(
            self.missing_messages or self.missing_conversations or self.last_round_unrepaired
        )


class Reconciler:
    def __init__(
        self,
        engine: AsyncEngine,
        documents: DocumentStore,
        *,
        grace_seconds: float = 2.0,
        page_size: int = 200,
        interval: float = 600.0,
        check_interval: float = 0.0,
    ) -> None:
        self.engine = engine
        self.documents = documents
        self.grace = timedelta(seconds=grace_seconds)
        self.page_size = page_size
        self.interval = interval
        self.check_interval = check_interval
        self.state = CheckState()
        self._wake = asyncio.Event()
        self._background = Background("sync-reconcile")
        self.memory = MemorySync(engine, MemoryDocuments(documents.db))

    @classmethod
    def from_settings(
        cls, settings: Settings, engine: AsyncEngine, documents: DocumentStore
    ) -> Reconciler:
        return cls(
            engine,
            documents,
            grace_seconds=settings.sync_grace_seconds,
            interval=settings.sync_reconcile_seconds,
            check_interval=settings.sync_check_seconds,
        )

    async def run(self, *, repair: bool, deep: bool = True) -> ReconcileReport:
        report = ReconcileReport()
        idle_before = datetime.now(UTC) - self.grace
        after: UUID | None = None
        while True:
            async with read_connection(self.engine) as conn:
                page = await SyncReader(conn).conversations_page(
                    after=after, limit=self.page_size, idle_before=idle_before
                )
            if not page:
                break
            after = page[-1].id
            report.conversations += len(page)
            report.drifts.extend(await self._page(page, repair=repair, deep=deep))
        report.drifts.extend(await self._orphans(repair=repair, deep=deep))
        for found in await self.memory.reconcile(repair=repair, deep=deep):
            report.drifts.append(Drift(found.memory_id, found.kind, found.detail, repaired=repair))
        return report

    async def _page(
        self, page: Sequence[ConversationRecord], *, repair: bool, deep: bool
    ) -> list[Drift]:
        ids = [c.id for c in page]
        summaries = await self.documents.conversation_summaries(ids)
        stats = await self.documents.message_stats(ids)
        async with read_connection(self.engine) as conn:
            states = await MemoryReader(conn).current_summaries(ids)
        drifts: list[Drift] = []
        for conversation in page:
            cid = str(conversation.id)
            plan = await self._compare(conversation, summaries.get(cid), stats.get(cid), deep=deep)
            compare_summary(plan, cid, summaries.get(cid), states.get(conversation.id))
            if repair and plan.drifts:
                fixed = await repair_conversation(self.engine, self.documents, conversation, plan)
                plan.drifts = [
                    Drift(d.conversation_id, d.kind, d.detail, repaired=fixed) for d in plan.drifts
                ]
            drifts.extend(plan.drifts)
        return drifts

    async def _compare(
        self,
        conversation: ConversationRecord,
        summary: dict[str, Any] | None,
        stats: dict[str, Any] | None,
        *,
        deep: bool,
    ) -> RepairPlan:
        plan = RepairPlan()
        cid, count = str(conversation.id), conversation.message_count

        def drift(kind: str, detail: str) -> None:
            plan.drifts.append(Drift(cid, kind, detail))

        held = stats["count"] if stats else 0
        bounds = (stats["min_seq"], stats["max_seq"]) if stats else (None, None)
        if deep or held != count or (count and bounds != (1, count)):
            # MongoDB first: a turn committing meanwhile then shows as missing there (replayed,
            # harmless), never as extra (which repair would delete)
            mongo_ids = await self.documents.message_ids(conversation.id)
            async with read_connection(self.engine) as conn:
                in_sql = await MessageReader(conn).ids(conversation.id)
            sql_ids = {str(k): v for k, v in in_sql.items()}
            missing = sorted(set(sql_ids) - set(mongo_ids), key=sql_ids.__getitem__)
            extra = sorted(set(mongo_ids) - set(sql_ids), key=mongo_ids.__getitem__)
            moved = [i for i in set(sql_ids) & set(mongo_ids) if sql_ids[i] != mongo_ids[i]]
            if missing:
                seqs = [sql_ids[i] for i in missing]
                drift("missing_messages", f"{len(missing)} not in MongoDB (seq {span(seqs)})")
            if extra:
                seqs = [mongo_ids[i] for i in extra]
                drift("extra_messages", f"{len(extra)} not in SQL (seq {span(seqs)})")
            if moved:
                drift("seq_mismatch", f"{len(moved)} with another seq than in SQL")
            plan.delete_ids = extra + moved
            plan.insert_ids = [UUID(i) for i in missing + moved]
        if deep:
            await self._compare_feedback(conversation, plan)
        if summary is None:
            drift("missing_document", "no chat_conversations document")
            plan.rebuild = True
        else:
            meta = summary.get("metadata") or {}
            plan.observed_last_seq = meta.get("last_seq")
            wrong = document_differences(conversation, summary)
            if wrong:
                drift("counters", "; ".join(wrong))
                plan.rebuild = True
        if not plan.drifts and conversation.synced_seq < count:
            drift("sync_marker", f"synced_seq {conversation.synced_seq} < {count}, stores agree")
        return plan

    async def _compare_feedback(self, conversation: ConversationRecord, plan: RepairPlan) -> None:
        """Feedback SQL holds against what ``chat_messages`` says (deep check only)."""
        async with read_connection(self.engine) as conn:
            in_sql = await FeedbackReader(conn).for_conversation(conversation.id)
        in_mongo = await self.documents.feedback_of(conversation.id)
        differing = [
            record
            for message_id, record in in_sql.items()
            if (in_mongo.get(str(message_id)) or {}).get("rating") != record.rating
            or (in_mongo.get(str(message_id)) or {}).get("comment") != record.comment
        ]
        if differing:
            plan.drifts.append(
                Drift(
                    str(conversation.id),
                    "feedback",
                    f"{len(differing)} feedback(s) differ from SQL in MongoDB",
                )
            )
            plan.feedback = differing

    async def _orphans(self, *, repair: bool, deep: bool) -> list[Drift]:
        """MongoDB conversations whose SQL conversation was deleted (the deep check also finds
        those left only in ``chat_messages`` or ``chat_analytics``)."""
        drifts: list[Drift] = []
        after: str | None = None
        candidates: list[str] = []
        while True:
            page = await self.documents.conversation_ids_after(after, self.page_size)
            if not page:
                break
            after = page[-1]
            candidates.extend(await self._missing_in_sql(page))
        if deep:
            known = set(candidates)
            # messages, and runs' analytics (a late batched insert whose flush could not take it
            # back: its second check or its delete failed)
            ids = sorted(
                set(await self.documents.message_conversation_ids())
                | set(await self.documents.analytics_conversation_ids())
            )
            for start in range(0, len(ids), self.page_size):
                chunk = ids[start : start + self.page_size]
                candidates.extend(c for c in await self._missing_in_sql(chunk) if c not in known)
        for cid in candidates:
            repaired = False
            if repair:
                try:
                    await self.documents.delete_conversation(UUID(cid))
                    repaired = True
                except PyMongoError as exc:
                    log.warning("could not delete orphan %s: %s", cid, type(exc).__name__)
            drifts.append(Drift(cid, "orphan", "in MongoDB, not in SQL", repaired=repaired))
        return drifts

    async def _missing_in_sql(self, ids: Sequence[str]) -> list[str]:
        parsed: dict[UUID, str] = {}
        for cid in ids:
            with contextlib.suppress(ValueError):
                parsed[UUID(cid)] = cid
        async with read_connection(self.engine) as conn:
            existing = await SyncReader(conn).existing(list(parsed))
        return [cid for uid, cid in parsed.items() if uid not in existing]

    # -- periodic -----------------------------------------------------------------------------

    async def check_totals(self) -> bool:
        """The cheap loss check; True when MongoDB holds fewer than SQL says it was given."""
        async with read_connection(self.engine) as conn:
            sql_messages, sql_conversations = await synced_totals(conn)
        mongo_messages, mongo_conversations = await self.documents.totals()
        state = self.state
        state.last_totals_at = datetime.now(UTC)
        state.missing_messages = max(0, sql_messages - mongo_messages)
        state.missing_conversations = max(0, sql_conversations - mongo_conversations)
        if state.missing_messages or state.missing_conversations:
            log.error(
                "MongoDB lost data: it holds %d message(s) and %d conversation(s) fewer than SQL "
                "recorded as copied; repairing from SQL",
                state.missing_messages,
                state.missing_conversations,
            )
            return True
        return False

    async def round(self) -> ReconcileReport:
        """One quick round with repair, logged and kept in ``state``."""
        report = await self.run(repair=True, deep=False)
        for d in report.drifts:
            log.warning(
                "reconcile: %s %s (%s)%s",
                d.conversation_id,
                d.kind,
                d.detail,
                " repaired" if d.repaired else "",
            )
        state = self.state
        state.rounds += 1
        state.last_round_at = datetime.now(UTC)
        state.last_round_drifts = len(report.drifts)
        state.last_round_unrepaired = sum(1 for d in report.drifts if not d.repaired)
        state.repaired_total += sum(1 for d in report.drifts if d.repaired)
        return report

    def request_check(self) -> None:
        """Check now (e.g. the embedded MongoDB just restarted and may have lost data)."""
        self._wake.set()

    async def run_forever(self) -> None:
        loop = asyncio.get_running_loop()
        # a quick round at start: data lost while the server was down (when rounds are on)
        next_round = loop.time() if self.interval > 0 else math.inf
        while True:
            raise_if_cancelling()
            due = next_round - loop.time()
            if self.check_interval > 0:
                due = min(due, self.check_interval)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), max(0.0, due))
            woken = self._wake.is_set()
            self._wake.clear()
            try:
                lost = (woken or self.check_interval > 0) and await self.check_totals()
                if woken or lost or loop.time() >= next_round:
                    report = await self.round()
                    if report.drifts or lost:
                        # until a round comes back clean: conversations busy during this one
                        # (left for ``grace``) and repairs a turn raced are looked at again
                        next_round = loop.time() + max(self.grace.total_seconds(), 0.5)
                    else:
                        next_round = loop.time() + (self.interval or math.inf)
                    # the totals again, now that the round repaired what it could
                    if self.check_interval > 0:
                        await self.check_totals()
                self.state.last_error = None
            except (PyMongoError, SQLAlchemyError, OSError) as exc:
                self.state.last_error = type(exc).__name__
                log.warning("reconcile check failed: %s", type(exc).__name__)
                next_round = min(next_round, loop.time() + max(self.check_interval, 5.0))

    def start(self) -> None:
        if self.interval > 0 or self.check_interval > 0:
            self._background.start(self.run_forever)

    async def stop(self) -> None:
        await self._background.stop()
