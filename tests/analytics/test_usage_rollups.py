"""Usage analytics on real stores: runs seeded straight into ``chat_analytics`` with known
tokens, costs and times, then every ``group_by`` combination compared with a brute-force
computation over the raw documents, before and after the rollups, and rollups re-run."""

from __future__ import annotations

import itertools
import math
import random
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from employeevirtual.analytics import histogram
from employeevirtual.analytics.service import UsageQuery, UsageRow
from employeevirtual.runtime import Runtime
from employeevirtual.stores.mongo.collections import Collections

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
STATUSES = ["success"] * 12 + ["provider", "timeout", "limit", "cancelled", "configuration"]
GROUPINGS = [
    combo
    for n in range(5)
    for combo in itertools.combinations(("day", "agent", "user", "model"), n)
]


def seed_runs(n: int, *, rng: random.Random) -> list[dict[str, Any]]:
    agents = [str(uuid.uuid4()) for _ in range(3)]
    users = [str(uuid.uuid4()) for _ in range(3)]
    models = ["openai-chat:a", "anthropic:b"]
    docs = []
    for _ in range(n):
        status = rng.choice(STATUSES)
        ok = status == "success"
        at = NOW - timedelta(seconds=rng.randrange(0, 10 * 86400))
        at = at.replace(microsecond=at.microsecond // 1000 * 1000)
        docs.append(
            {
                "_id": str(uuid.uuid4()),
                "conversation_id": str(uuid.uuid4()),
                "user_id": rng.choice(users),
                "agent_id": rng.choice(agents),
                "message_id": str(uuid.uuid4()),
                "model": rng.choice(models),
                "input_tokens": rng.randrange(0, 500) if ok else 0,
                "output_tokens": rng.randrange(0, 300) if ok else 0,
                "cost": round(rng.random() / 100, 8) if ok else None,
                "execution_time": rng.lognormvariate(-1, 1),
                "tool_calls": rng.randrange(0, 3) if ok else 0,
                "delegated_runs": rng.randrange(0, 2) if ok else 0,
                "status": status,
                "timestamp": at,
                **(
                    {"feedback": {"rating": rng.choice(["up", "down"])}}
                    if ok and rng.random() < 0.3
                    else {}
                ),
            }
        )
    return docs


def brute_force(docs: list[dict[str, Any]], group_by: tuple[str, ...]) -> dict[Any, dict[str, Any]]:
    fields = {"day": "day", "agent": "agent_id", "user": "user_id", "model": "model"}
    out: dict[Any, dict[str, Any]] = {}
    for d in docs:
        values = {**d, "day": d["timestamp"].astimezone(UTC).date()}
        key = tuple(values[fields[g]] for g in ("day", "agent", "user", "model") if g in group_by)
        row = out.setdefault(
            key,
            {
                "turns": 0,
                "in": 0,
                "out": 0,
                "cost": 0.0,
                "tools": 0,
                "delegated": 0,
                "up": 0,
                "down": 0,
                "times": [],
                "failed": {},
            },
        )
        row["turns"] += 1
        row["in"] += d["input_tokens"]
        row["out"] += d["output_tokens"]
        row["cost"] += d["cost"] or 0.0
        row["tools"] += d["tool_calls"]
        row["delegated"] += d["delegated_runs"]
        rating = d.get("feedback", {}).get("rating")
        row["up"] += rating == "up"
        row["down"] += rating == "down"
        if d["status"] == "success":
            row["times"].append(d["execution_time"])
        else:
            row["failed"][d["status"]] = row["failed"].get(d["status"], 0) + 1
    return out


def row_key(row: UsageRow, group_by: tuple[str, ...]) -> tuple[Any, ...]:
    values = {"day": row.day, "agent": row.agent_id, "user": row.user_id, "model": row.model}
    return tuple(values[g] for g in ("day", "agent", "user", "model") if g in group_by)


def assert_matches(
    rows: list[UsageRow], expected: dict[Any, dict[str, Any]], group_by: tuple[str, ...]
) -> None:
    got = {row_key(r, group_by): r for r in rows}
    assert set(got) == set(expected), group_by
    for key, want in expected.items():
        row = got[key]
        assert row.turns == want["turns"]
        assert row.input_tokens == want["in"]
        assert row.output_tokens == want["out"]
        assert row.cost == pytest.approx(want["cost"], rel=1e-9, abs=1e-12)
        assert row.tool_calls == want["tools"]
        assert row.delegated_runs == want["delegated"]
        assert (row.feedback_up, row.feedback_down) == (want["up"], want["down"])
        failed = want["failed"]
        assert row.failed_provider == failed.get("provider", 0)
        assert row.failed_timeout == failed.get("timeout", 0)
        assert row.failed_limit == failed.get("limit", 0)
        assert row.failed_cancelled == failed.get("cancelled", 0)
        assert row.failed_other == failed.get("configuration", 0)
        times = sorted(want["times"])
        if not times:
            assert row.response_time_mean is None and row.response_time_p50 is None
            continue
        assert row.response_time_mean == pytest.approx(sum(times) / len(times), rel=1e-9)
        hist: dict[str, int] = {}
        for t in times:
            hist[str(histogram.bucket_of(t))] = hist.get(str(histogram.bucket_of(t)), 0) + 1
        for p, value in ((0.5, row.response_time_p50), (0.95, row.response_time_p95)):
            # the histogram MongoDB built is the one computed here, bucket for bucket ...
            assert value == histogram.percentile(hist, p)
            # ... and its estimate is within half a bucket of the exact nearest-rank value
            exact = times[max(1, math.ceil(p * len(times))) - 1]
            assert value is not None
            assert abs(value - exact) / exact <= math.sqrt(histogram.GAMMA) - 1 + 1e-9


async def test_every_grouping_matches_brute_force_raw_and_rolled(runtime: Runtime) -> None:
    rng = random.Random(14)
    docs = seed_runs(600, rng=rng)
    # and a few inside the settle window before NOW, which stay raw after a round
    docs += [
        d | {"timestamp": NOW - timedelta(seconds=10 * i)}
        for i, d in enumerate(seed_runs(3, rng=rng), start=1)
    ]
    await runtime.documents.analytics.insert_many(docs)
    rollups = runtime.analytics.rollups
    rollups.clock = lambda: NOW
    query = UsageQuery(start=date(2026, 2, 28), end=date(2026, 3, 10))

    for group_by in GROUPINGS:  # nothing rolled up yet: all raw
        rows = await runtime.analytics.compute(UsageQuery(query.start, query.end, group_by))
        assert_matches(rows, brute_force(docs, group_by), group_by)

    report = await rollups.run()
    assert report.complete_through == date(2026, 3, 9)
    assert len(report.days) == 10  # 28 Feb..9 March as complete days
    # then today up to the settle time ago; only the runs after that stay raw
    assert report.partial_through == NOW - timedelta(seconds=rollups.settle_seconds)
    assert (await rollups.coverage()).raw_from == report.partial_through
    daily = runtime.documents.db[Collections.ANALYTICS_DAILY]
    assert await daily.count_documents({"day": datetime(2026, 3, 10, tzinfo=UTC)}) > 0
    raw_after = [d for d in docs if d["timestamp"] >= report.partial_through]
    assert raw_after, "the seed puts runs inside the settle window"
    for group_by in GROUPINGS:  # rollups up to 11:59 on the 10th, raw after it
        rows = await runtime.analytics.compute(UsageQuery(query.start, query.end, group_by))
        assert_matches(rows, brute_force(docs, group_by), group_by)

    # filters, and a range that ends inside the rolled-up days
    agent = docs[0]["agent_id"]
    some = [
        d
        for d in docs
        if d["agent_id"] == agent and date(2026, 3, 1) <= d["timestamp"].date() <= date(2026, 3, 5)
    ]
    rows = await runtime.analytics.compute(
        UsageQuery(date(2026, 3, 1), date(2026, 3, 5), ("day", "model"), agent_id=uuid.UUID(agent))
    )
    assert_matches(rows, brute_force(some, ("day", "model")), ("day", "model"))
    assert await rollups.check(date(2026, 3, 1), date(2026, 3, 10)) == []


async def test_rollups_are_idempotent_and_follow_late_changes(runtime: Runtime) -> None:
    rng = random.Random(7)
    docs = seed_runs(300, rng=rng)
    await runtime.documents.analytics.insert_many(docs)
    rollups = runtime.analytics.rollups
    rollups.clock = lambda: NOW
    daily = runtime.documents.db[Collections.ANALYTICS_DAILY]

    await rollups.run()
    first = sorted([d async for d in daily.find()], key=lambda d: str(d["_id"]))
    await rollups.run(start=date(2026, 3, 1), end=date(2026, 3, 9))  # the command, same range
    await rollups.run()
    again = sorted([d async for d in daily.find()], key=lambda d: str(d["_id"]))
    assert again == first

    # a run the relay writes late for a rolled-up day, and feedback given later: marked dirty
    late = seed_runs(1, rng=rng)[0] | {"timestamp": datetime(2026, 3, 2, 8, tzinfo=UTC)}
    await runtime.documents.analytics.insert_one(late)
    drift = await rollups.check(date(2026, 3, 1), date(2026, 3, 9))
    assert drift and {d.day for d in drift} == {date(2026, 3, 2)}
    await runtime.documents.mark_rollups_dirty([late["timestamp"]])
    await rollups.run()
    assert await rollups.check(date(2026, 3, 1), date(2026, 3, 9)) == []
    rows = await runtime.analytics.compute(UsageQuery(date(2026, 2, 28), date(2026, 3, 10)))
    assert_matches(rows, brute_force([*docs, late], ()), ())

    # a deleted conversation's runs leave no stale rollup group behind once re-rolled
    gone = docs[1]
    await runtime.documents.analytics.delete_many({"conversation_id": gone["conversation_id"]})
    await rollups.run(start=gone["timestamp"].date(), end=gone["timestamp"].date())
    assert await rollups.check(date(2026, 3, 1), date(2026, 3, 9)) == []


async def test_today_is_rolled_up_so_far_and_late_runs_join_the_next_round(
    runtime: Runtime,
) -> None:
    """Today's runs before the last round (less the settle time) are read from rollups, so the
    raw part of a query is the last minutes, not the day; a run written late for that span is
    counted from the next round, and a round in progress never counts a run twice."""
    rng = random.Random(21)
    docs = seed_runs(300, rng=rng)
    await runtime.documents.analytics.insert_many(docs)
    rollups = runtime.analytics.rollups
    rollups.clock = lambda: NOW
    report = await rollups.run()
    through = report.partial_through
    assert through is not None
    today = UsageQuery(date(2026, 3, 10), date(2026, 3, 10), ("agent", "model"))
    todays = [d for d in docs if d["timestamp"].date() == date(2026, 3, 10)]
    assert_matches(
        await runtime.analytics.compute(today), brute_force(todays, today.group_by), today.group_by
    )

    # the raw part of the query reads only the runs after ``through``: hiding today's rolled
    # runs from the raw collection leaves the answer unchanged
    rolled = [d["_id"] for d in todays if d["timestamp"] < through]
    assert rolled
    hidden = await runtime.documents.analytics.find({"_id": {"$in": rolled}}).to_list(None)
    await runtime.documents.analytics.delete_many({"_id": {"$in": rolled}})
    assert_matches(
        await runtime.analytics.compute(today), brute_force(todays, today.group_by), today.group_by
    )
    await runtime.documents.analytics.insert_many(hidden)

    # a run the relay writes late, stamped before ``through``: counted after the next round
    late = seed_runs(1, rng=rng)[0] | {"timestamp": through - timedelta(hours=1)}
    await runtime.documents.analytics.insert_one(late)
    later = NOW + timedelta(minutes=5)
    rollups.clock = lambda: later
    second = await rollups.run()
    assert second.partial_through == later - timedelta(seconds=rollups.settle_seconds)
    everything = UsageQuery(date(2026, 2, 28), date(2026, 3, 10))
    assert_matches(await runtime.analytics.compute(everything), brute_force([*docs, late], ()), ())

    # while a round replaces documents its mark is off: today is read raw, nothing twice
    state = runtime.documents.db[Collections.ANALYTICS_STATE]
    await state.update_one({"_id": "daily"}, {"$unset": {"partial": ""}})
    coverage = await rollups.coverage()
    assert coverage.partial_through is None
    assert coverage.raw_from == datetime(2026, 3, 10, tzinfo=UTC)
    assert_matches(await runtime.analytics.compute(everything), brute_force([*docs, late], ()), ())

    # the day after: yesterday is rolled whole, and its partial mark no longer counts
    rollups.clock = lambda: NOW + timedelta(days=1)
    third = await rollups.run()
    assert third.complete_through == date(2026, 3, 10)
    assert await rollups.check(date(2026, 3, 10), date(2026, 3, 10)) == []
    assert_matches(await runtime.analytics.compute(everything), brute_force([*docs, late], ()), ())


async def test_rollups_made_with_a_key_document_id_are_replaced_when_their_day_rolls_again(
    runtime: Runtime,
) -> None:
    """Rollup documents once had their group key document as ``_id``; they are now keyed by a
    string (``pipelines.rollup_id``). Old documents still count and compare, and a day rolled
    again holds only new ones, the same numbers."""
    rng = random.Random(5)
    docs = seed_runs(200, rng=rng)
    await runtime.documents.analytics.insert_many(docs)
    rollups = runtime.analytics.rollups
    rollups.clock = lambda: NOW
    await rollups.run()
    daily = runtime.documents.db[Collections.ANALYTICS_DAILY]
    rolled = [d async for d in daily.find()]
    assert rolled and all(isinstance(d["_id"], str) for d in rolled)
    # as an older version left them
    await daily.delete_many({})
    await daily.insert_many(
        [
            d | {"_id": {k: d[k] for k in ("day", "agent_id", "user_id", "model") if k in d}}
            for d in rolled
        ]
    )
    everything = UsageQuery(date(2026, 2, 28), date(2026, 3, 10))
    assert_matches(await runtime.analytics.compute(everything), brute_force(docs, ()), ())
    assert await rollups.check(date(2026, 2, 28), date(2026, 3, 9)) == []

    # a new document beside an old one of the same group (a roll that failed before its
    # cleanup): counted twice by the dashboard, so the check names it
    (old,) = [d async for d in daily.find({"day": datetime(2026, 3, 5, tzinfo=UTC)}).limit(1)]
    await daily.insert_one(old | {"_id": "a-copy"})
    (twice,) = await rollups.check(date(2026, 3, 5), date(2026, 3, 5))
    assert (twice.field, twice.raw, twice.rollup) == ("documents", 1, 2)
    await daily.delete_one({"_id": "a-copy"})

    await rollups.run(start=date(2026, 3, 5), end=date(2026, 3, 5))
    day = [d async for d in daily.find({"day": datetime(2026, 3, 5, tzinfo=UTC)})]
    assert day and all(isinstance(d["_id"], str) for d in day)
    assert await rollups.check(date(2026, 2, 28), date(2026, 3, 9)) == []
    assert_matches(await runtime.analytics.compute(everything), brute_force(docs, ()), ())
