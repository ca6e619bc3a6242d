"""Retention: what expires, and when (0 days = keep forever).

- ``user_activities``, ``system_logs`` (MongoDB): a TTL index on ``timestamp`` (MongoDB
  deletes them itself), and the purge below as well, so a server without a TTL monitor (or a
  test's clock) sees the same result.
- raw ``chat_analytics`` (MongoDB): the purge only, never past what the daily rollups already
  hold (``complete_through`` less the days a rollup round reads again); a TTL index cannot
  know that.
- ``audit_log`` (SQL): the purge, ``EV_RETENTION_BATCH_SIZE`` rows per short transaction.
- archived or idle conversations: the purge, one conversation at a time through the same path
  as a user's delete (SQL with an audit row, then MongoDB; the reconciler removes what MongoDB
  missed).
- finished exports: deleted ``EV_EXPORT_TTL_HOURS`` after they were built.

Erasure tombstones are never purged: they are the audit trail's record of an erasure.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase
from sqlalchemy.ext.asyncio import AsyncEngine

from employeevirtual.chat.conversations import ConversationService
from employeevirtual.people.export import ExportService
from employeevirtual.stores.mongo.collections import Collections
from employeevirtual.stores.mongo.people import delete_before, ensure_ttl
from employeevirtual.stores.sql.audit import AuditRepository
from employeevirtual.stores.sql.engine import read_connection, write_transaction
from employeevirtual.stores.sql.retention import RetentionReader
from employeevirtual.tasks import Background, Periodic, raise_if_cancelling

__all__ = ["RetentionJob", "RetentionPolicy", "RetentionReport"]

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
DAY = timedelta(days=1)


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    """Days each kind of data is kept; 0 keeps it forever."""

    user_activities_days: int = 0
    system_logs_days: int = 0
    chat_analytics_days: int = 0
    audit_log_days: int = 0
    archived_conversations_days: int = 0
    inactive_conversations_days: int = 0


@dataclass(slots=True)
class RetentionReport:
    deleted: dict[str, int] = field(default_factory=dict)

    def add(self, name: str, count: int) -> None:
        self.deleted[name] = self.deleted.get(name, 0) + count


class RetentionJob(Periodic):
    def __init__(
        self,
        *,
        engine: AsyncEngine,
        db: AsyncDatabase[dict[str, Any]],
        conversations: ConversationService,
        exports: ExportService,
        policy: RetentionPolicy,
        rollups_complete_through: Callable[[], Awaitable[date | None]],
        rollup_lookback_days: int,
        batch_size: int = 500,
        interval_seconds: float = 3600.0,
        clock: Clock = _utcnow,
    ) -> None:
        self.engine = engine
        self.db = db
        self.conversations = conversations
        self.exports = exports
        self.policy = policy
        self.rollups_complete_through = rollups_complete_through
        self.rollup_lookback_days = rollup_lookback_days
        self.batch_size = batch_size
        self.interval = interval_seconds
        self.clock = clock
        self._background = Background("retention")

    def _cutoff(self, days: int, now: datetime) -> datetime | None:
        return now - days * DAY if days > 0 else None

    async def ensure_ttl_indexes(self) -> None:
        """MongoDB expires activities and system logs itself (TTL monitor, about once a
        minute); a period of 0 drops the TTL index."""
        for collection, days in (
            (Collections.USER_ACTIVITIES, self.policy.user_activities_days),
            (Collections.SYSTEM_LOGS, self.policy.system_logs_days),
        ):
            ok = await ensure_ttl(self.db, collection, field="timestamp", seconds=days * 86_400)
            if not ok:
                log.warning("no TTL index on %s; the retention purge alone expires it", collection)

    async def run_once(self) -> RetentionReport:
        now = self.clock()
        report = RetentionReport()
        p = self.policy
        for collection, days in (
            (Collections.USER_ACTIVITIES, p.user_activities_days),
            (Collections.SYSTEM_LOGS, p.system_logs_days),
        ):
            cutoff = self._cutoff(days, now)
            if cutoff is not None:
                report.add(
                    collection,
                    await delete_before(self.db, collection, field="timestamp", cutoff=cutoff),
                )
        cutoff = await self._analytics_cutoff(now)
        if cutoff is not None:
            report.add(
                Collections.CHAT_ANALYTICS,
                await delete_before(
                    self.db, Collections.CHAT_ANALYTICS, field="timestamp", cutoff=cutoff
                ),
            )
        cutoff = self._cutoff(p.audit_log_days, now)
        if cutoff is not None:
            report.add("audit_log", await self._purge_audit(cutoff))
        report.add("conversations", await self._purge_conversations(now))
        report.add("exports", await self.exports.expire())
        return report

    async def _analytics_cutoff(self, now: datetime) -> datetime | None:
        """Raw runs go only once the rollups hold their day, and never inside the days a
        rollup round reads again (it would find the day empty and drop its rollup)."""
        wanted = self._cutoff(self.policy.chat_analytics_days, now)
        if wanted is None:
            return None
        done = await self.rollups_complete_through()
        if done is None:
            return None
        first_reread = done - timedelta(days=self.rollup_lookback_days - 1)
        safe = datetime.combine(first_reread, time.min, tzinfo=UTC)
        return min(wanted, safe)

    async def _purge_audit(self, cutoff: datetime) -> int:
        total = 0
        while True:
            async with write_transaction(self.engine) as conn:
                deleted = await AuditRepository(conn).purge_before(cutoff, batch=self.batch_size)
            total += deleted
            if deleted < self.batch_size:
                return total
            await asyncio.sleep(0)  # let turns in between: no long lock

    async def _purge_conversations(self, now: datetime) -> int:
        archived = self._cutoff(self.policy.archived_conversations_days, now)
        inactive = self._cutoff(self.policy.inactive_conversations_days, now)
        if archived is None and inactive is None:
            return 0
        total = 0
        while True:
            async with read_connection(self.engine) as conn:
                due = await RetentionReader(conn).expired_conversations(
                    archived_before=archived, inactive_before=inactive, limit=self.batch_size
                )
            for conversation_id in due:
                if await self.conversations.purge(
                    conversation_id, actor_id=None, reason="retention", now=now
                ):
                    total += 1
            if len(due) < self.batch_size:
                return total

    # -- the background round --

    async def _made_ttl_indexes(self) -> bool:
        """``ensure_ttl_indexes``; False when MongoDB did not answer (unreachable at start): the
        next round tries again. Without them MongoDB expires nothing itself, and the purge's
        delete by ``timestamp`` finds no index on ``user_activities`` (a scan)."""
        try:
            await self.ensure_ttl_indexes()
        except Exception as exc:
            log.warning("no TTL indexes yet (%s); tried again next round", type(exc).__name__)
            return False
        return True

    async def _loop(self) -> None:
        indexed = False
        while True:
            if not indexed:
                indexed = await self._made_ttl_indexes()
            try:
                report = await self.run_once()
                if any(report.deleted.values()):
                    log.info("retention purge: %s", report.deleted)
            except Exception:
                log.exception("retention round failed; retrying next round")
            raise_if_cancelling()
            await asyncio.sleep(self.interval)
