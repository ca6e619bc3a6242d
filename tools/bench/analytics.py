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

from employeevirtual.analytics.rollups import Rollups
from employeevirtual.analytics.service import AnalyticsService, UsageQuery
from employeevirtual.main import create_app
from employeevirtual.settings import Settings
from employeevirtual.stores.mongo.collections import Collections, ensure_indexes
from employeevirtual.stores.mongo.secantus import SecantusServer

TODAY = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
AGENTS = [str(uuid.uuid4()) for _ in range(2)]
USERS = [str(uuid.uuid4()) for _ in range(3)]
MODELS = ["openai-chat:a", "anthropic:b"]


def _runs(n: int, rng: random.Random) -> list[dict[str, Any]]:
    out = []
    for _ in range(n):
        at = TODAY - timedelta(seconds=rng.randrange(0, 90 * 86400))
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


async def query_at(url: str, n: int, *, repeats: int) -> dict[str, float]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(url, tz_aware=True)
    db = client[f"bench_analytics_{n}_{uuid.uuid4().hex[:6]}"]
    try:
        await ensure_indexes(db)
        rng = random.Random(n)
        started = time.perf_counter()
        left = n
        while left:
            batch = min(left, 20_000)
            await db[Collections.CHAT_ANALYTICS].insert_many(_runs(batch, rng), ordered=False)
            left -= batch
        seeded = time.perf_counter() - started
        rollups = Rollups(db, clock=lambda: TODAY, lookback_days=2)
        started = time.perf_counter()
        await rollups.run()
        rolled = time.perf_counter() - started
        service = AnalyticsService(db, rollups, max_days=366)
        query = UsageQuery(start=(TODAY - timedelta(days=89)).date(), end=TODAY.date())
        by_day = UsageQuery(query.start, query.end, group_by=("day", "agent"))
        times: dict[str, list[float]] = {"total": [], "day_agent": []}
        for _ in range(repeats):
            for name, q in (("total", query), ("day_agent", by_day)):
                t = time.perf_counter()
                rows = await service.compute(q)
                times[name].append(time.perf_counter() - t)
                assert rows
        daily = await db[Collections.ANALYTICS_DAILY].count_documents({})
        return {
            "runs": n,
            "seed_s": seeded,
            "rollup_s": rolled,
            "rollup_docs": daily,
            "total_p50_ms": statistics.median(times["total"]) * 1000,
            "day_agent_p50_ms": statistics.median(times["day_agent"]) * 1000,
        }
    finally:
        await client.drop_database(db.name)
        await client.close()


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
            results = [await query_at(url, n, repeats=args.repeats) for n in args.sizes]
            for r in results:
                print(
                    f"   {r['runs']:>9,} runs: seed {r['seed_s']:.1f} s, rollup "
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
    parser.add_argument("--turns", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--mongodb-url", default=None)
    parser.add_argument("--parts", nargs="+", default=["query", "cpu"], choices=["query", "cpu"])
    parser.add_argument("--quick", action="store_true", help="10,000 vs 100,000 runs, fewer turns")
    parsed, _ = parser.parse_known_args()  # make bench passes the main bench's flags too
    if parsed.quick:
        parsed.sizes, parsed.turns, parsed.rounds, parsed.repeats = [10_000, 100_000], 100, 2, 7
    asyncio.run(main(parsed))
