"""Daily rollups of ``chat_analytics`` (one document per day × agent × user × model), made by a
MongoDB aggregation ending in ``$merge`` and kept incrementally.

State (``analytics_state`` document ``daily``): ``complete_through``, the last day every day up
to which has been rolled up; ``partial``, today's runs rolled up so far (``day`` and
``through``: the runs of ``[day, through)``); and ``dirty``, days whose raw runs changed after
they were rolled up (feedback given later, runs the relay wrote late). Each round re-rolls the
last ``lookback_days`` days, the dirty days and every complete day not rolled yet, then today
up to ``settle_seconds`` ago. Dashboards read rollups up to ``partial.through`` and raw runs
only after it: the raw part is the last round's interval plus the settle time, whatever the
volume of a day. Rolling a day twice leaves the same documents (``$merge`` replaces by the
group key and groups that vanished are deleted), so the next round's roll of today (or of the
completed day) replaces the partial documents; a run written late for today (before
``through``) is counted from the next round on. A turn's run is written by the sync-ack flush
(``sync/acks.py``), up to one flush interval (0.5 s) after the turn: well inside the settle time.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from employeevirtual.analytics.pipelines import SUMS, rollup_pipeline
from employeevirtual.stores.mongo.collections import Collections
from employeevirtual.tasks import Background, Periodic, raise_if_cancelling

__all__ = ["Clock", "Coverage", "Drift", "RollupReport", "RollupTask", "Rollups", "day_start"]

log = logging.getLogger(__name__)

Document = dict[str, Any]
Clock = Callable[[], datetime]
STATE_ID = "daily"


def day_start(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class RollupReport:
    days: list[date]
    complete_through: date | None
    partial_through: datetime | None = None  # today's runs before this are rolled up


@dataclass(frozen=True, slots=True)
class Coverage:
    """What the rollups hold: every day up to ``complete_through``, then (``partial_through``
    set) the next day's runs before that moment."""

    complete_through: date | None
    partial_through: datetime | None

    @property
    def raw_from(self) -> datetime | None:
        """Where the raw runs take over from the rollups (None: nothing rolled up)."""
        if self.partial_through is not None:
            return self.partial_through
        if self.complete_through is None:
            return None
        return day_start(self.complete_through + timedelta(days=1))


@dataclass(frozen=True, slots=True)
class Drift:
    day: date
    key: Document
    field: str
    raw: Any
    rollup: Any


@dataclass
class Rollups:
    db: AsyncDatabase[Document]
    clock: Clock
    lookback_days: int = 2
    # a run's document reaches MongoDB within this long of its timestamp (the turn's commit,
    # then one insert); today is rolled up only to this long ago
    settle_seconds: float = 60.0
    _raw: Any = field(init=False)
    _daily: Any = field(init=False)
    _state: Any = field(init=False)

    def __post_init__(self) -> None:
        self._raw = self.db[Collections.CHAT_ANALYTICS]
        self._daily = self.db[Collections.ANALYTICS_DAILY]
        self._state = self.db[Collections.ANALYTICS_STATE]

    def today(self) -> date:
        return self.clock().astimezone(UTC).date()

    async def complete_through(self) -> date | None:
        return (await self.coverage()).complete_through

    async def coverage(self) -> Coverage:
        state = await self._state.find_one({"_id": STATE_ID}, {"complete_through": 1, "partial": 1})
        value = (state or {}).get("complete_through")
        done = value.astimezone(UTC).date() if value else None
        partial = (state or {}).get("partial") or {}
        through: datetime | None = partial.get("through")
        # partial documents count only for the day right after the complete ones
        if (
            through is None
            or done is None
            or partial.get("day") != day_start(done + timedelta(days=1))
        ):
            through = None
        return Coverage(done, through.astimezone(UTC) if through is not None else None)

    async def roll_day(self, day: date, *, until: datetime | None = None) -> None:
        """Roll one day up from its raw runs (idempotent); ``until``: only its runs before
        that moment (today's partial roll)."""
        start, end = day_start(day), until or day_start(day + timedelta(days=1))
        cursor = await self._raw.aggregate(rollup_pipeline(start, end, Collections.ANALYTICS_DAILY))
        await cursor.to_list(None)
        # groups whose runs are gone (a deleted conversation) leave no stale rollup behind, nor
        # do the day's documents rolled when ``_id`` was the key document (``rollup_id``)
        keys_cursor = await self._raw.aggregate(
            [*rollup_pipeline(start, end, None), {"$project": {"_id": 1}}]
        )
        keys = [d["_id"] async for d in keys_cursor]
        await self._daily.delete_many({"day": start, "_id": {"$nin": keys}})

    async def run(self, *, start: date | None = None, end: date | None = None) -> RollupReport:
        """One incremental round (no arguments), or every day of ``[start, end]`` rolled again
        (the command's ``--from/--to``). Only complete days (before today, UTC) are rolled as
        days; an incremental round whose coverage reaches yesterday then rolls today so far."""
        incremental = start is None and end is None
        yesterday = self.today() - timedelta(days=1)
        state = await self._state.find_one({"_id": STATE_ID}) or {}
        if state.get("partial"):
            # while documents are replaced, dashboards read today raw: a query between the
            # roll and the new mark would otherwise count runs after the old mark twice
            await self._state.update_one({"_id": STATE_ID}, {"$unset": {"partial": ""}})
        dirty = [d.astimezone(UTC).date() for d in state.get("dirty", [])]
        # taken off before rolling: a mark made while this round reads the runs stays
        if dirty:
            await self._state.update_one(
                {"_id": STATE_ID}, {"$pullAll": {"dirty": [day_start(d) for d in dirty]}}
            )
        done = await self.complete_through()
        first: date | None = None
        if done is None:
            found = await self._raw.find_one({}, {"timestamp": 1}, sort=[("timestamp", 1)])
            if found is None:
                return RollupReport([], None)
            first = found["timestamp"].astimezone(UTC).date()
        if start is None:
            start = first if done is None else done - timedelta(days=self.lookback_days - 1)
        assert start is not None
        end = min(end or yesterday, yesterday)
        days = {start + timedelta(days=i) for i in range(max(0, (end - start).days + 1))}
        days |= {d for d in dirty if d <= yesterday}
        for day in sorted(days):
            await self.roll_day(day)
        # coverage stays contiguous: it only moves when this round joined on to it
        joined = start <= done + timedelta(days=1) if done is not None else start <= first  # type: ignore[operator]
        if joined and (done is None or end > done):
            await self._state.update_one(
                {"_id": STATE_ID}, {"$set": {"complete_through": day_start(end)}}, upsert=True
            )
            done = end
        partial = None
        if incremental and done == yesterday:
            partial = await self._roll_today()
        return RollupReport(sorted(days), done, partial)

    async def _roll_today(self) -> datetime | None:
        """Today's runs up to ``settle_seconds`` ago, into the daily documents of today."""
        through = self.clock().astimezone(UTC) - timedelta(seconds=self.settle_seconds)
        today = self.today()
        if through.date() != today:
            return None  # just after midnight: today is all raw
        await self.roll_day(today, until=through)
        await self._state.update_one(
            {"_id": STATE_ID},
            {"$set": {"partial": {"day": day_start(today), "through": through}}},
            upsert=True,
        )
        return through

    async def check(self, start: date, end: date) -> list[Drift]:
        """Rollups against a fresh computation from the raw runs, for every rolled day of
        ``[start, end]``: an empty list means they agree."""
        done = await self.complete_through()
        if done is None:
            return []
        drifts: list[Drift] = []
        day = start
        while day <= min(end, done):
            s, e = day_start(day), day_start(day + timedelta(days=1))
            fresh = {
                _key(d): d async for d in await self._raw.aggregate(rollup_pipeline(s, e, None))
            }
            stored: dict[tuple[tuple[str, Any], ...], Document] = {}
            copies: Counter[tuple[tuple[str, Any], ...]] = Counter()
            async for d in self._daily.find({"day": s}):
                stored[_key(d)] = d
                copies[_key(d)] += 1
            # two documents of one group (an old-shape one beside its new one, left by a roll
            # that failed before its cleanup) are counted twice by every reader
            drifts += [Drift(day, dict(k), "documents", 1, n) for k, n in copies.items() if n > 1]
            for key in fresh.keys() | stored.keys():
                a, b = fresh.get(key), stored.get(key)
                for name in (*SUMS, "hist"):
                    va = None if a is None else a.get(name)
                    vb = None if b is None else b.get(name)
                    if not _same(va, vb):
                        drifts.append(Drift(day, dict(key), name, va, vb))
            day += timedelta(days=1)
        return drifts


KEY_FIELDS = ("day", "agent_id", "user_id", "model")


def _key(doc: Document) -> tuple[tuple[str, Any], ...]:
    """A rollup's group, from its fields: documents rolled before ``_id`` became a string
    (``rollup_id``; its key document before) compare as well until their day is rolled again."""
    return tuple((k, doc[k]) for k in KEY_FIELDS if k in doc)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return (
            a is not None
            and b is not None
            and abs(float(a) - float(b)) <= 1e-9 * max(1.0, abs(float(a)))
        )
    return bool(a == b)


class RollupTask(Periodic):
    """The background round: ``Rollups.run()`` every ``interval`` seconds (0 = never)."""

    def __init__(self, rollups: Rollups, *, interval: float) -> None:
        self.rollups = rollups
        self.interval = interval
        self._background = Background("analytics-rollups")

    async def _loop(self) -> None:
        while True:
            try:
                report = await self.rollups.run()
                if report.days:
                    log.info("analytics rollups: %d day(s) rolled up", len(report.days))
            except Exception as exc:  # MongoDB away: the next round catches up
                log.warning("analytics rollup round failed: %s", type(exc).__name__)
            raise_if_cancelling()  # a stop that a MongoDB call swallowed still stops the loop
            await asyncio.sleep(self.interval)
