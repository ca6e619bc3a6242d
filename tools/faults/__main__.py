"""``python -m tools.faults [--long] [--scenario NAME ...]``: run, count, print.

SQLite in a temporary directory, or PostgreSQL when ``EV_TEST_POSTGRES_URL`` (or
``--postgres URL``) is given. Exits 1 when any scenario lost, duplicated or saw something
unexpected, or when the stores did not converge.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from tools.faults.scenarios import SCENARIOS, Plan, run_scenario
from tools.faults.verify import Counts

SHORT = Plan(
    workers=6, users=2, stretch=1.6, pace=0.05, crashes=1, relay_kills=1, crash_every=7, copies=3
)
LONG = Plan(
    workers=24, users=4, stretch=8.0, pace=0.02, crashes=5, relay_kills=3, crash_every=25, copies=4
)


def table(results: list[Counts], backend: str) -> Table:
    out = Table(title=f"Fault injection ({backend}): Jepsen-style counts")
    for column in (
        "scenario",
        "attempted",
        "acknowledged",
        "retried",
        "lost",
        "duplicated",
        "unexpected",
        "converge s",
        "stores equal",
        "blocked max s",
        "blocked p99 s",
        "gave up",
        "fault",
    ):
        out.add_column(column, justify="left" if column in ("scenario", "fault") else "right")
    for c in results:
        out.add_row(
            c.scenario,
            str(c.attempted),
            str(c.acknowledged),
            str(c.retried),
            _flag(c.lost),
            _flag(c.duplicated),
            _flag(c.unexpected),
            "never" if c.converge_seconds is None else f"{c.converge_seconds:.2f}",
            "yes" if c.stores_equal else "[red]NO[/]",
            f"{c.blocked_max:.2f}",
            f"{c.blocked_p99:.2f}",
            _flag(c.gave_up),
            c.faults,
        )
    return out


def _flag(n: int) -> str:
    return str(n) if n == 0 else f"[red]{n}[/]"


async def run(
    names: list[str], plan: Plan, *, workdir: Path, postgres_url: str | None, lanes: int = 1
) -> list[Counts]:
    """The scenarios in ``lanes`` concurrent lanes (each scenario has its own processes, ports
    and databases; lanes overlap one's start-up with another's load). A lane that is free takes
    the next scenario (they differ in length). Results in ``names`` order."""
    results: dict[str, Counts] = {}
    queue = iter(names)  # shared by the lanes

    async def lane() -> None:
        for name in queue:
            started = time.perf_counter()
            counts = await run_scenario(name, workdir=workdir, plan=plan, postgres_url=postgres_url)
            counts.notes.append(f"{time.perf_counter() - started:.1f} s wall")
            results[name] = counts

    await asyncio.gather(*(lane() for _ in range(max(1, lanes))))
    return [results[name] for name in names]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.faults", description=__doc__)
    parser.add_argument("--long", action="store_true", help="the long run (make faults)")
    parser.add_argument("--scenario", action="append", choices=sorted(SCENARIOS))
    parser.add_argument("--postgres", default=os.environ.get("EV_TEST_POSTGRES_URL"))
    parser.add_argument("--workdir", type=Path, help="keep logs and data here")
    parser.add_argument("--lanes", type=int, default=2, help="scenarios run side by side")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING)
    names = args.scenario or list(SCENARIOS)
    plan = LONG if args.long else SHORT
    backend = "PostgreSQL" if args.postgres else "SQLite"
    with tempfile.TemporaryDirectory(prefix="ev-faults-") as tmp:
        workdir = args.workdir or Path(tmp)
        results = asyncio.run(
            run(names, plan, workdir=workdir, postgres_url=args.postgres, lanes=args.lanes)
        )
    console = Console(width=200)
    console.print(table(results, backend))
    for c in results:
        if c.notes:
            console.print(f"[bold]{c.scenario}[/]: " + "; ".join(c.notes[:8]))
    return 0 if all(c.ok for c in results) else 1


if __name__ == "__main__":
    sys.exit(main())
