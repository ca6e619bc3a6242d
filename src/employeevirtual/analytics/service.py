"""Usage analytics: who used what, at what cost and speed, and how people rated it.

A query reads the daily rollups for what is already rolled up (every complete day, and today up
to the last round less a settle time) and the raw ``chat_analytics`` runs after that: about
days × groups documents plus the runs of the last few minutes, whatever the number of turns.
Percentiles come from the rollups' mergeable histograms (``histogram.py``), never from the raw
runs. A turn's run reaches ``chat_analytics`` with the next sync-ack flush (``sync/acks.py``,
``EV_SYNC_ACK_SECONDS``, 0.5 s), not with the turn's answer: a query made right after a turn
may not count it yet.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any
from uuid import UUID

from pymongo.asynchronous.database import AsyncDatabase

from employeevirtual.analytics import histogram
from employeevirtual.analytics.pipelines import DIMENSIONS, SUMS, raw_usage_pipeline
from employeevirtual.analytics.rollups import Rollups, day_start
from employeevirtual.errors import InvalidInput, NotFound
from employeevirtual.stores.mongo.collections import Collections
from employeevirtual.stores.records import UserRecord

__all__ = ["AnalyticsService", "UsageQuery", "UsageRow"]

Document = dict[str, Any]


@dataclass(frozen=True, slots=True)
class UsageQuery:
    start: date
    end: date  # inclusive
    group_by: tuple[str, ...] = ()
    agent_id: UUID | None = None
    user_id: UUID | None = None
    model: str | None = None


@dataclass(frozen=True, slots=True)
class UsageRow:
    day: date | None
    agent_id: str | None
    user_id: str | None
    model: str | None
    turns: int
    failed_provider: int
    failed_timeout: int
    failed_limit: int
    failed_cancelled: int
    failed_other: int
    input_tokens: int
    output_tokens: int
    cost: float
    response_time_mean: float | None
    response_time_p50: float | None
    response_time_p95: float | None
    tool_calls: int
    delegated_runs: int
    feedback_up: int
    feedback_down: int

    @property
    def failed(self) -> int:
        return (
            self.failed_provider
            + self.failed_timeout
            + self.failed_limit
            + self.failed_cancelled
            + self.failed_other
        )


class AnalyticsService:
    def __init__(self, db: AsyncDatabase[Document], rollups: Rollups, *, max_days: int) -> None:
        self.db = db
        self.rollups = rollups
        self.max_days = max_days

    def validate(self, query: UsageQuery) -> None:
        if query.end < query.start:
            raise InvalidInput("'to' is before 'from'")
        days = (query.end - query.start).days + 1
        if days > self.max_days:
            raise InvalidInput(f"the range is {days} days; at most {self.max_days} at a time")
        unknown = set(query.group_by) - DIMENSIONS.keys()
        if unknown:
            raise InvalidInput(
                f"group_by: unknown {sorted(unknown)}; use any of {sorted(DIMENSIONS)}"
            )

    async def usage(self, caller: UserRecord, query: UsageQuery) -> list[UsageRow]:
        """Rows for ``query``; a user sees only their own usage (another user's id: 404)."""
        self.validate(query)
        if not caller.is_admin:
            if query.user_id is not None and query.user_id != caller.id:
                raise NotFound(f"user {query.user_id} not found")
            query = UsageQuery(**{**_fields(query), "user_id": caller.id})
        return await self.compute(query)

    async def compute(self, query: UsageQuery) -> list[UsageRow]:
        start, end_excl = day_start(query.start), day_start(query.end + timedelta(days=1))
        raw_from = (await self.rollups.coverage()).raw_from
        # rollup documents are per day: the one of raw_from's day holds its runs before it
        rolled_days_end = (
            start if raw_from is None else day_start(raw_from.date() + timedelta(days=1))
        )
        if raw_from is not None and raw_from == day_start(raw_from.date()):
            rolled_days_end = raw_from  # complete days only
        rollup_end = max(start, min(end_excl, rolled_days_end))
        raw_start = start if raw_from is None else max(start, min(end_excl, raw_from))
        filters: Document = {}
        if query.agent_id is not None:
            filters["agent_id"] = str(query.agent_id)
        if query.user_id is not None:
            filters["user_id"] = str(query.user_id)
        if query.model is not None:
            filters["model"] = query.model
        group_by = [DIMENSIONS[g] for g in DIMENSIONS if g in query.group_by]  # a stable order
        totals = _Totals()
        if rollup_end > start:
            # the rollup documents themselves, added up here: a histogram merges by adding its
            # buckets, and SecantusDB's $unwind/$group over them grew with the buckets a day
            # fills (3.3 s at 1,000,000 runs against 1.0 s at 10,000 for the same documents)
            fields = ["day", "agent_id", "user_id", "model", *SUMS, "hist"]
            async for doc in self.db[Collections.ANALYTICS_DAILY].find(
                {**filters, "day": {"$gte": start, "$lt": rollup_end}},
                dict.fromkeys(fields, 1) | {"_id": 0},
            ):
                key = {name: doc.get(name) for name in group_by} or None
                totals.add(key, doc, doc.get("hist") or {})
        if raw_start < end_excl:
            cursor = await self.db[Collections.CHAT_ANALYTICS].aggregate(
                raw_usage_pipeline(
                    start=raw_start,
                    end=end_excl,
                    filters=filters,
                    group_by=[g for g in DIMENSIONS if g in query.group_by],
                )
            )
            result = (await cursor.to_list(1))[0]
            for row in result["rows"]:
                totals.add(row["_id"], row, {})
            for item in result["hist"]:
                totals.add_bucket(item["_id"].get("g"), str(item["_id"]["k"]), int(item["v"]))
        rows = [self._row(r, totals.hists.get(group, {})) for group, r in totals.sums.items()]
        # a delegate's row has usage but no turn of its own (issue 13)
        rows = [r for r in rows if r.turns or r.input_tokens or r.output_tokens or r.cost]
        rows.sort(
            key=lambda r: (r.day or date.min, r.agent_id or "", r.user_id or "", r.model or "")
        )
        return rows

    @staticmethod
    def _row(doc: Document, hist: dict[str, int]) -> UsageRow:
        key = doc["_id"] or {}
        day = key.get("day")
        count = int(doc["time_count"])
        return UsageRow(
            day=day.date() if day is not None else None,
            agent_id=key.get("agent_id"),
            user_id=key.get("user_id"),
            model=key.get("model"),
            turns=int(doc["turns"]),
            failed_provider=int(doc["failed_provider"]),
            failed_timeout=int(doc["failed_timeout"]),
            failed_limit=int(doc["failed_limit"]),
            failed_cancelled=int(doc["failed_cancelled"]),
            failed_other=int(doc["failed_other"]),
            input_tokens=int(doc["input_tokens"]),
            output_tokens=int(doc["output_tokens"]),
            cost=float(doc["cost"]),
            response_time_mean=float(doc["time_sum"]) / count if count else None,
            response_time_p50=histogram.percentile(hist, 0.5),
            response_time_p95=histogram.percentile(hist, 0.95),
            tool_calls=int(doc["tool_calls"]),
            delegated_runs=int(doc["delegated_runs"]),
            feedback_up=int(doc["feedback_up"]),
            feedback_down=int(doc["feedback_down"]),
        )


class _Totals:
    """Counters and histogram buckets added up per group (the group key frozen)."""

    def __init__(self) -> None:
        self.sums: dict[Any, Document] = {}
        self.hists: dict[Any, dict[str, int]] = {}

    def add(self, key: Document | None, counters: Document, hist: dict[str, int]) -> None:
        group = _freeze(key)
        into = self.sums.get(group)
        if into is None:
            into = self.sums[group] = {"_id": key, **dict.fromkeys(SUMS, 0)}
        for name in SUMS:
            into[name] += counters.get(name) or 0
        for bucket, count in hist.items():
            self.add_bucket(key, bucket, int(count))

    def add_bucket(self, key: Any, bucket: str, count: int) -> None:
        counts = self.hists.setdefault(_freeze(key), {})
        counts[bucket] = counts.get(bucket, 0) + count


def _fields(query: UsageQuery) -> dict[str, Any]:
    return {name: getattr(query, name) for name in UsageQuery.__dataclass_fields__}


def _freeze(key: Any) -> Any:
    if isinstance(key, dict):
        return tuple(sorted((k, _freeze(v)) for k, v in key.items()))
    return key
