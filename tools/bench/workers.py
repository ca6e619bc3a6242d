"""``python -m tools.bench.workers [--workers 1 2] [--quick]``: the bench's workers step alone,
with the machine's CPU split by kind of process.

The quick look at where the instant-model turns' time and CPU go when only this step changes:
the conversations seeded as the full bench seeds them (``SeedSpec`` with the summaries'
steady state), then the full bench's own workers step (``run._workers``: a plain server with
1, then 2 worker processes; 64 instant turns in flight, 10 back to back on each conversation;
then 100 one-second turns at once) on the stores the ``EV_*`` names give (an embedded default
otherwise). Each run prints turns/s, p50/p99 and the machine's CPU per turn by kind of
process (``processes.cpu_by_kind``). The full bench (``python -m tools.bench``) gives the
targets.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from pymongo import AsyncMongoClient

from employeevirtual.settings import Settings
from employeevirtual.stores.mongo.documents import DocumentStore
from employeevirtual.stores.sql.engine import create_engine
from tools.bench.run import BenchPlan, _Api, _client, _server, _stores, _workers
from tools.bench.seed import seed_load
from tools.bench.server import INSTANT_MODEL, SLOW_MODEL


def _print(result: dict[str, Any]) -> None:
    for step in ("instant", "slow"):
        run = result[step]
        kinds = run["per_turn_ms"]["machine_by_kind"]
        split = ", ".join(f"{kind} {ms:.2f}" for kind, ms in kinds.items() if ms >= 0.005)
        print(
            f"{result['workers']} worker(s), {step} x {run['in_flight']}:"
            f" {run['throughput_per_s']:.0f} turns/s, p50 {run['p50_ms']:.0f} ms,"
            f" p99 {run['p99_ms']:.0f} ms, errors {run['errors']};"
            f" machine {run['per_turn_ms']['machine_cpu']:.2f} ms/turn"
            f" ({run['machine_busy']:.0%} busy): {split};"
            f" connections per worker {run['connections_per_worker']}"
        )


async def workers_step(workers: list[int], plan: BenchPlan, slow_conversations: int) -> None:
    settings = Settings()
    async with _stores(settings, drop_schema=True) as stores:
        engine = create_engine(stores.sql_url, schema=stores.schema)
        mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(stores.mongo_url, tz_aware=True)
        documents = DocumentStore(mongo[stores.mongo_database], window=settings.conversation_window)
        try:
            # the schema and the bench user come from a first (plain) server, as in the bench
            async with _server(stores, plan, plain=True) as served, _client(served.base) as client:
                api = _Api(client)
                await api.login()
                assert api.user_id is not None
                instant = await api.agent(INSTANT_MODEL, "Instant")
                slow = await api.agent(SLOW_MODEL, "Slow")
            many, quick = await seed_load(
                engine,
                documents,
                settings,
                api.user_id,
                (instant, plan.workers_in_flight),
                (slow, max(plan.workers_slow_in_flight, slow_conversations)),
            )
            for n in workers:
                _print(await _workers(stores, plan, n, api.headers, quick, many, print))
        finally:
            await engine.dispose()
            await mongo.close()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tools.bench.workers")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--quick", action="store_true", help="the quick plan's smaller counts")
    parser.add_argument(
        "--conversations",
        type=int,
        default=1_000,
        help="slow-model conversations seeded (the full bench seeds one per 1,000-burst turn)",
    )
    args = parser.parse_args()
    plan = BenchPlan.quick() if args.quick else BenchPlan()
    asyncio.run(workers_step(args.workers, plan, args.conversations))


if __name__ == "__main__":
    main()
