"""``employeevirtual analytics rollup|check``: the daily rollups from the command line.

Settings come from the same ``EV_*`` variables as the server. Without ``EV_MONGODB_URL`` the
embedded SecantusDB is started on the data directory, which only works while the server is not
running (the server owns it then).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from employeevirtual.analytics.rollups import Drift, Rollups
from employeevirtual.settings import Settings
from employeevirtual.stores.mongo.client import connect
from employeevirtual.stores.mongo.collections import ensure_indexes
from employeevirtual.stores.mongo.embedded import start_embedded
from employeevirtual.stores.mongo.secantus import SecantusServer

__all__ = ["analytics_app"]

analytics_app = typer.Typer(
    name="analytics", help="Usage analytics: daily rollups.", no_args_is_help=True
)
console = Console()

FROM = typer.Option("--from", help="first day (YYYY-MM-DD, UTC)")
TO = typer.Option("--to", help="last day (YYYY-MM-DD, UTC)")


@asynccontextmanager
async def _rollups() -> AsyncIterator[Rollups]:
    settings = Settings()
    logging.basicConfig(level=settings.log_level, format="%(levelname)s %(name)s: %(message)s")
    secantus: SecantusServer | None = None
    if settings.mongodb_url is not None:
        url = settings.mongodb_url.get_secret_value()
    else:
        secantus = await start_embedded(settings.data_dir)
        url = secantus.url
    mongo = connect(url, timeout_ms=settings.mongodb_timeout_ms)
    try:
        db = mongo[settings.mongodb_database]
        await ensure_indexes(db)
        yield Rollups(
            db,
            clock=lambda: datetime.now(UTC),
            lookback_days=settings.analytics_rollup_lookback_days,
        )
    finally:
        await mongo.close()
        if secantus is not None:
            await secantus.stop()


def _day(value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a date; use YYYY-MM-DD") from None


@analytics_app.command("rollup")
def rollup(
    start: Annotated[str | None, FROM] = None, end: Annotated[str | None, TO] = None
) -> None:
    """Roll raw runs up into daily documents: incrementally (no options, as the server does
    in the background) or every day of --from/--to again. Idempotent."""

    async def main() -> None:
        async with _rollups() as rollups:
            report = await rollups.run(start=_day(start), end=_day(end))
        console.print(
            f"{len(report.days)} day(s) rolled up; complete through {report.complete_through}"
        )

    asyncio.run(main())


def _print(drifts: list[Drift]) -> None:
    table = Table(title="rollups vs raw runs")
    for name in ("day", "group", "field", "raw", "rollup"):
        table.add_column(name)
    for d in drifts[:200]:
        group = ", ".join(f"{k}={v}" for k, v in d.key.items() if k != "day")
        table.add_row(str(d.day), group, d.field, str(d.raw), str(d.rollup))
    console.print(table)


@analytics_app.command("check")
def check(
    start: Annotated[str, FROM],
    end: Annotated[str | None, TO] = None,
    repair: Annotated[bool, typer.Option("--repair", help="roll differing days again")] = False,
) -> None:
    """Compare the rollups of every rolled-up day in the range with the raw runs; exit 1 on
    a difference (after --repair: when one remains)."""

    async def main() -> int:
        first = _day(start)
        assert first is not None
        async with _rollups() as rollups:
            last = _day(end) or rollups.today()
            drifts = await rollups.check(first, last)
            if not drifts:
                console.print(f"[green]rollups agree with the raw runs {first}..{last}[/]")
                return 0
            _print(drifts)
            if not repair:
                return 1
            for day in sorted({d.day for d in drifts}):
                await rollups.roll_day(day)
            left = await rollups.check(first, last)
            console.print(f"repaired; {len(left)} difference(s) left")
            return 1 if left else 0

    raise typer.Exit(asyncio.run(main()))


if __name__ == "__main__":
    analytics_app()
