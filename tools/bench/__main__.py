"""``python -m tools.bench [--quick] [--out DIR] [--drop-schema]``, or
``python -m tools.bench --summarize FILE...`` for medians over several runs."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
from pathlib import Path

from employeevirtual.settings import Settings
from tools.bench.report import summarize_runs, write_results
from tools.bench.run import BenchPlan, run_bench


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tools.bench")
    parser.add_argument("--quick", action="store_true", help="small counts (a smoke run)")
    parser.add_argument("--out", type=Path, default=Path("bench-results"))
    parser.add_argument(
        "--drop-schema", action="store_true", help="drop EV_DATABASE_SCHEMA afterwards (not SQLite)"
    )
    parser.add_argument("--summarize", nargs="+", type=Path, metavar="JSON")
    parser.add_argument("--lengths", type=int, nargs="+", help="messages per seeded conversation")
    parser.add_argument("--concurrency", type=int, nargs="+", help="turns in flight per step")
    parser.add_argument("--turns", type=int, help="measured sequential turns per length")
    parser.add_argument(
        "--no-streams", action="store_true", help="skip the live-turn steps (issue 11's figures)"
    )
    args = parser.parse_args()
    if args.summarize:
        summarize_runs(args.summarize)
        return
    plan = BenchPlan.quick() if args.quick else BenchPlan()
    changes = {
        "lengths": args.lengths,
        "concurrency": args.concurrency,
        "turns": args.turns,
    }
    plan = dataclasses.replace(plan, **{k: v for k, v in changes.items() if v})
    if args.no_streams:
        plan = dataclasses.replace(plan, stream_turns=0)
    results = asyncio.run(run_bench(Settings(), plan=plan, drop_schema=args.drop_schema))
    write_results(results, args.out)


if __name__ == "__main__":
    main()
