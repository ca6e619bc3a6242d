"""``python -m tools.bench.analytics``: what usage analytics, budgets and metrics cost.

1. **Dashboard query at any volume.** Raw ``chat_analytics`` runs are seeded straight into a
   SecantusDB (or ``EV_MONGODB_URL``) over 90 days, 2 agents × 3 users × 2 models (every group
   present every day at both sizes), rolled up, and the 90-day ``GET /api/analytics/usage``
   query (``AnalyticsService.compute``: rollups plus today's raw runs) is timed at 10,000 and at
   1,000,000 runs. Target: the latency ratio ≤ 1.5×.
2. **CPU per turn from budgets and metrics.** The real app in process (httpx ASGI, SQLite +
   SecantusDB, offline model): server CPU (``time.process_time``) per turn with neither, and
   with a user budget + an agent budget and every metric on. Target: ≤ 5% more.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from pymongo import AsyncMongoClient

from employeevirtual.analytics import histogram
from employeevirtual.analytics.pipelines import SUMS
from employeevirtual.analytics.rollups import Rollups, day_start
from employeevirtual.analytics.service import AnalyticsService, UsageQuery, UsageRow
from employeevirtual.main import create_app
from employeevirtual.settings import Settings
from employeevirtual.stores.mongo.collections import Collections, ensure_indexes
from employeevirtual.stores.mongo.secantus import SecantusServer

TODAY = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
AGENTS = [str(uuid.uuid4()) for _ in range(2)]
USERS = [str(uuid.uuid4()) for _ in range(3)]
MODELS = ["openai-chat:a", "anthropic:b"]


def _runs(n: int, rng: random.Random, start: datetime, seconds: int) -> list[dict[str, Any]]:
    """``n`` raw ``chat_analytics`` runs spread over ``[start, start + seconds)``."""
    out = []
    for _ in range(n):
        at = start + timedelta(seconds=rng.randrange(0, seconds))
        ok = rng.random() < 0.95
        out.append(
            {
                "_id": str(uuid.uuid4()),
                "conversation_id": str(uuid.uuid4()),
                "user_id": rng.choice(USERS),
                "agent_id": rng.choice(AGENTS),
                "model": rng.choice(MODELS),
                "input_tokens": rng.randrange(10, 500),
                "output_tokens": rng.randrange(10, 300),
                "cost": rng.random() / 100,
                "execution_time": rng.lognormvariate(-1, 1),
                "tool_calls": rng.randrange(0, 3),
                "delegated_runs": 0,
                "status": "success" if ok else "provider",
                "timestamp": at.replace(microsecond=at.microsecond // 1000 * 1000),
            }
        )
    return out


def _days(n: int) -> list[tuple[datetime, int, int]]:
    """(day start, runs, seconds) for the 90 days up to ``TODAY`` (noon): the runs spread
    evenly over the 89.5 days' seconds, today's half day getting half a day's share."""
    first = day_start((TODAY - timedelta(days=89)).date())
    per_second = n / (89 * 86400 + (TODAY - day_start(TODAY.date())).seconds)
    out, given = [], 0
    for i in range(90):
        start = first + timedelta(days=i)
        seconds = 86400 if i < 89 else (TODAY - start).seconds
        runs = round(per_second * seconds) if i < 89 else n - given
        out.append((start, runs, seconds))
        given += runs
    return out


def rollup_documents(runs: list[dict[str, Any]], day: datetime) -> list[dict[str, Any]]:
    """What the rollup pipeline (``analytics.pipelines.rollup_pipeline``) makes of one day's
    runs, computed here: for the days whose raw runs are bulk-loaded as their rollups."""
    groups: dict[tuple[str, str, str], dict[str, Any]] = {}
    for r in runs:
        key = (r["agent_id"], r["user_id"], r["model"])
        g = groups.get(key)
        if g is None:
            g = groups[key] = dict.fromkeys(SUMS, 0) | {"hist": {}}
        ok = r["status"] == "success"
        g["turns"] += 1
        g["failed_provider"] += r["status"] == "provider"
        g["input_tokens"] += r["input_tokens"]
        g["output_tokens"] += r["output_tokens"]
        g["cost"] += r["cost"]
        g["tool_calls"] += r["tool_calls"]
        if ok:
            g["time_sum"] += r["execution_time"]
            g["time_count"] += 1
            bucket = str(histogram.bucket_of(r["execution_time"]))
            g["hist"][bucket] = g["hist"].get(bucket, 0) + 1
    out = []
    for (agent_id, user_id, model), g in groups.items():
        group = {"day": day, "agent_id": agent_id, "user_id": user_id, "model": model}
        out.append({"_id": group, **group, **g})
    return out


async def query_at(url: str, n: int, *, repeats: int, raw_days: int) -> dict[str, Any]:
    """Seed ``n`` runs over 90 days, roll them up, time the 90-day query. ``raw_days`` > 0:
    only the last ``raw_days`` days (today included) are loaded as raw runs and rolled up by
    the real pipeline; the days before are bulk-loaded as the daily rollup documents those
    runs make (``rollup_documents``), as a deployment whose raw runs past retention were purged
    holds them (``EV_CHAT_ANALYTICS_DAYS``). 0: every run raw, all rolled up by the pipeline."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(url, tz_aware=True)
    db = client[f"bench_analytics_{n}_{uuid.uuid4().hex[:6]}"]
    try:
        rng = random.Random(n)
        started = time.perf_counter()
        raw_count = prerolled = 0
        cut = len(_days(n)) - raw_days if raw_days else 0
        for i, (start, runs, seconds) in enumerate(_days(n)):
            day_runs = _runs(runs, rng, start, seconds)
            if i < cut:
                docs = rollup_documents(day_runs, start)
                await db[Collections.ANALYTICS_DAILY].insert_many(docs, ordered=False)
                prerolled += len(day_runs)
                continue
            for j in range(0, len(day_runs), 20_000):
                batch = day_runs[j : j + 20_000]
                await db[Collections.CHAT_ANALYTICS].insert_many(batch, ordered=False)
            raw_count += len(day_runs)
        rollups = Rollups(db, clock=lambda: TODAY, lookback_days=2)
        if cut:
            # the state a server whose rollups kept up would have: a round re-rolls the last
            # ``lookback_days`` complete days, which must be raw days (a day without raw runs
            # rolled again loses its groups)
            through = _days(n)[cut + rollups.lookback_days - 1][0]  # raw_days >= lookback + 1
            await db[Collections.ANALYTICS_STATE].insert_one(
                {"_id": "daily", "complete_through": through}
            )
        await ensure_indexes(db)  # after the load: building them at once is much faster here
        seeded = time.perf_counter() - started
        started = time.perf_counter()
        await rollups.run()
        rolled = time.perf_counter() - started
        service = AnalyticsService(db, rollups, max_days=366)
        query = UsageQuery(start=(TODAY - timedelta(days=89)).date(), end=TODAY.date())
        by_day = UsageQuery(query.start, query.end, group_by=("day", "agent"))
        times: dict[str, list[float]] = {"total": [], "day_agent": []}
        rows: dict[str, list[UsageRow]] = {}
        for _ in range(repeats):
            for name, q in (("total", query), ("day_agent", by_day)):
                t = time.perf_counter()
                rows[name] = await service.compute(q)
                times[name].append(time.perf_counter() - t)
        assert sum(r.turns for r in rows["total"]) == n, rows["total"]
        daily = await db[Collections.ANALYTICS_DAILY].count_documents({})
        return {
            "runs": n,
            "raw_runs": raw_count,
            "prerolled_runs": prerolled,
            "seed_s": seeded,
            "rollup_s": rolled,
            "rollup_docs": daily,
            "rows": rows,
            "total_p50_ms": statistics.median(times["total"]) * 1000,
            "day_agent_p50_ms": statistics.median(times["day_agent"]) * 1000,
        }
    finally:
        await client.drop_database(db.name)
        await client.close()


def _same_rows(a: list[UsageRow], b: list[UsageRow]) -> bool:
    """Equal rows (float sums to 1e-9 relative: summation order differs)."""
    if len(a) != len(b):
        return False
    for x, y in zip(a, b, strict=True):
        for name in UsageRow.__dataclass_fields__:
            u, v = getattr(x, name), getattr(y, name)
            if isinstance(u, float) and isinstance(v, float):
                if abs(u - v) > 1e-9 * max(1.0, abs(u)):
                    return False
            elif u != v:
                return False
    return True


async def turn_cpu(url: str, *, turns: int, budgets: bool, metrics: bool) -> float:
    """Server CPU ms per turn (in process: the app, its SQLite thread, the drivers)."""
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            _env_file=None,
            data_dir=Path(tmp),
            mongodb_url=url,
            mongodb_database=f"bench_cpu_{uuid.uuid4().hex[:6]}",
            secret_key="bench-secret-key-0123456789abcdef",
            metrics_enabled=metrics,
            rate_limit_chat=1_000_000,
            rate_limit_global=1_000_000,
            sync_relay_enabled=False,
            analytics_rollup_seconds=0,
        )
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://bench") as c:
                email = f"bench-{uuid.uuid4().hex[:6]}@example.com"
                password = "a-long-unusual-passphrase-42"
                await c.post(
                    "/api/auth/register", json={"email": email, "password": password, "name": "B"}
                )
                r = await c.post("/api/auth/login", data={"username": email, "password": password})
                auth = {"Authorization": f"Bearer {r.json()['access_token']}"}
                me = (await c.get("/api/users/me", headers=auth)).json()
                agent = (await c.post("/api/agents", json={"name": "A"}, headers=auth)).json()
                if budgets:  # the first user is the admin: budgets on both scopes
                    for scope, sid in (("user", me["id"]), ("agent", agent["id"])):
                        r = await c.post(
                            "/api/admin/budgets",
                            json={"scope": scope, "scope_id": sid, "max_tokens": 10**12},
                            headers=auth,
                        )
                        assert r.status_code == 201, r.text
                r = await c.post(
                    "/api/chat/agent", json={"message": "hi", "agent_id": agent["id"]}, headers=auth
                )
                cid = r.json()["conversation_id"]
                body = {"message": "again", "conversation_id": cid}
                for _ in range(20):  # warm up
                    await c.post("/api/chat/agent", json=body, headers=auth)
                cpu = time.process_time()
                for _ in range(turns):
                    r = await c.post("/api/chat/agent", json=body, headers=auth)
                    assert r.status_code == 200, r.text
                return (time.process_time() - cpu) / turns * 1000


async def main(args: argparse.Namespace) -> None:
    server: SecantusServer | None = None
    url = args.mongodb_url
    if url is None:
        tmp = tempfile.mkdtemp(prefix="ev-bench-analytics-")
        server = SecantusServer(storage_path=tmp)
        await server.start()
        url = server.url
    try:
        if "query" in args.parts:
            print("1. 90-day dashboard query (rollups + today's raw runs)")
            if args.raw_days:
                # the bulk-loaded rollups equal the pipeline's: the same runs both ways
                small = min(args.sizes)
                full = await query_at(url, small, repeats=1, raw_days=0)
                loaded = await query_at(url, small, repeats=1, raw_days=args.raw_days)
                same = all(_same_rows(full["rows"][k], loaded["rows"][k]) for k in full["rows"])
                print(
                    f"   {small:,} runs all rolled up by the pipeline vs {args.raw_days} raw "
                    f"day(s) + bulk-loaded rollups: rows {'identical' if same else 'DIFFER'}"
                )
                assert same
            results = [
                await query_at(url, n, repeats=args.repeats, raw_days=args.raw_days)
                for n in args.sizes
            ]
            for r in results:
                print(
                    f"   {r['runs']:>9,} runs ({r['raw_runs']:,} raw, {r['prerolled_runs']:,} "
                    f"bulk-loaded as rollups): seed {r['seed_s']:.1f} s, rollup "
                    f"{r['rollup_s']:.1f} s ({r['rollup_docs']} daily docs); query p50 total "
                    f"{r['total_p50_ms']:.1f} ms, by day x agent {r['day_agent_p50_ms']:.1f} ms"
                )
            small, big = results[0], results[-1]
            for key in ("total_p50_ms", "day_agent_p50_ms"):
                ratio = big[key] / small[key]
                verdict = "met" if ratio <= 1.5 else "NOT met"
                print(
                    f"   ratio {big['runs']:,}/{small['runs']:,} ({key}): {ratio:.2f}x ({verdict})"
                )
        if "cpu" in args.parts:
            print("2. server CPU per turn (offline model, in process)")
            configs = {
                "neither": (False, False),
                "metrics only": (False, True),
                "2 budgets + metrics": (True, True),
            }
            cpu: dict[str, list[float]] = {name: [] for name in configs}
            for _ in range(args.rounds):  # interleaved, so machine noise hits all alike
                for name, (with_budgets, with_metrics) in configs.items():
                    cpu[name].append(
                        await turn_cpu(
                            url, turns=args.turns, budgets=with_budgets, metrics=with_metrics
                        )
                    )
            base = statistics.median(cpu["neither"])
            for name, values in cpu.items():
                median = statistics.median(values)
                print(
                    f"   {name:<20} {median:6.2f} ms/turn ({(median / base - 1) * 100:+5.1f}%)"
                    f"  {[round(x, 2) for x in values]}"
                )
            extra = statistics.median(cpu["2 budgets + metrics"]) / base - 1
            verdict = "met" if extra <= 0.05 else "NOT met"
            print(f"   extra from budgets + metrics: {extra * 100:+.1f}% ({verdict}; target <= 5%)")
    finally:
        if server is not None:
            await server.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m tools.bench.analytics")
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 1_000_000])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument(
        "--raw-days",
        type=int,
        default=3,
        help="days (today included) loaded as raw runs; the earlier ones as their rollups "
        "(0: all raw, rolled up by the pipeline; SecantusDB loads about 200 runs/s here)",
    )
    parser.add_argument("--turns", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--mongodb-url", default=None)
    parser.add_argument("--parts", nargs="+", default=["query", "cpu"], choices=["query", "cpu"])
    parser.add_argument("--quick", action="store_true", help="10,000 vs 100,000 runs, fewer turns")
    parsed, _ = parser.parse_known_args()  # make bench passes the main bench's flags too
    if parsed.quick:
        parsed.sizes, parsed.turns, parsed.rounds, parsed.repeats = [10_000, 100_000], 100, 2, 7
    asyncio.run(main(parsed))
