"""``employeevirtual sync run|check|repair``: the relay and the reconciler from the command line.

Mounted by the main CLI with ``app.add_typer(sync_app, name="sync")``; also runnable alone as
``python -m employeevirtual.sync.cli``. Settings come from the same ``EV_*`` variables as the
server. Without ``EV_MONGODB_URL``: while a server runs on the data directory, the tools use
its embedded SecantusDB (the URL it wrote in ``<data dir>/mongodb.url``); otherwise they start
the embedded SecantusDB themselves, holding the data directory's lock meanwhile.

Exit codes of ``check`` and ``repair``: 0 the stores agree (or all was repaired), 1 drift found
(or some could not be repaired), 2 could not check (a store unreachable, no URL to find it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated

import typer
from pymongo.errors import PyMongoError
from rich.console import Console
from rich.table import Table
from sqlalchemy.exc import SQLAlchemyError

from employeevirtual.settings import Settings
from employeevirtual.stores.datadir import (
    DataDirError,
    DataDirLock,
    embedded_mongodb_url,
    lock_holder,
)
from employeevirtual.stores.mongo.client import connect
from employeevirtual.stores.mongo.documents import DocumentStore
from employeevirtual.stores.mongo.embedded import start_embedded
from employeevirtual.stores.mongo.secantus import SecantusServer
from employeevirtual.stores.sql.engine import create_engine
from employeevirtual.stores.sql.migrate import upgrade
from employeevirtual.sync.drift import ReconcileReport
from employeevirtual.sync.reconcile import Reconciler
from employeevirtual.sync.relay import Relay

__all__ = ["sync_app"]

sync_app = typer.Typer(
    name="sync", help="Keep MongoDB in step with SQL: relay, check, repair.", no_args_is_help=True
)
console = Console()


@dataclass
class SyncTools:
    relay: Relay
    reconciler: Reconciler


@asynccontextmanager
async def _tools() -> AsyncIterator[SyncTools]:
    """Only what syncing needs (no agents, no web app): the relay process starts quickly."""
    settings = Settings()
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    engine = create_engine(settings.sql_url, schema=settings.database_schema)
    secantus: SecantusServer | None = None
    lock: DataDirLock | None = None
    try:
        server = lock_holder(settings.data_dir)
        if server is None:
            settings.data_dir.mkdir(parents=True, exist_ok=True)
            await upgrade(engine)  # a running server has migrated already
        if settings.mongodb_url is not None:
            url = settings.mongodb_url.get_secret_value()
        elif server is not None:
            found = embedded_mongodb_url(settings.data_dir)
            if found is None:
                raise DataDirError(
                    f"a server (pid {server}) is using {settings.data_dir} but has not written "
                    "its MongoDB URL there (still starting?); retry, or set EV_MONGODB_URL"
                )
            url = found
        else:
            lock = DataDirLock(settings.data_dir)
            lock.acquire()  # no server may start on these files while this command runs
            secantus = await start_embedded(settings.data_dir)
            url = secantus.url
        mongo = connect(url, timeout_ms=settings.mongodb_timeout_ms)
        try:
            documents = DocumentStore(
                mongo[settings.mongodb_database], window=settings.conversation_window
            )
            yield SyncTools(
                Relay.from_settings(settings, engine, documents),
                Reconciler.from_settings(settings, engine, documents),
            )
        finally:
            await mongo.close()
    finally:
        await engine.dispose()
        if secantus is not None:
            await secantus.stop()
        if lock is not None:
            lock.release()


@sync_app.command("run")
def run(
    once: Annotated[
        bool, typer.Option("--once", help="replay what is owed now, then exit")
    ] = False,
) -> None:
    """Run the relay (as the server does in the background) until SIGTERM or Ctrl-C."""

    async def main() -> None:
        async with _tools() as tools:
            if once:
                await tools.relay.drain()
                lag = await tools.relay.measure_lag()
                console.print(
                    f"relay done; {lag.conversations} conversation(s) still behind "
                    f"(lag {lag.seconds:.1f} s)"
                )
                return
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                with contextlib.suppress(NotImplementedError):
                    loop.add_signal_handler(sig, stop.set)
            tools.relay.start()
            try:
                await stop.wait()
            finally:
                await tools.relay.stop()

    asyncio.run(main())


def _print(report: ReconcileReport, *, repaired: bool) -> None:
    if report.clean:
        console.print(f"[green]{report.conversations} conversation(s) checked: stores agree[/]")
        return
    table = Table(title="SQL vs MongoDB", show_lines=False)
    table.add_column("conversation", no_wrap=True, min_width=36)  # an id to copy, never cut
    table.add_column("drift", no_wrap=True)
    table.add_column("detail")
    if repaired:
        table.add_column("repaired")
    for d in report.drifts:
        row = [d.conversation_id, d.kind, d.detail]
        if repaired:
            row.append("yes" if d.repaired else "[red]no[/]")
        table.add_row(*row)
    console.print(table)
    console.print(f"{report.conversations} conversation(s) checked, {len(report.drifts)} drift(s)")


QUICK = typer.Option("--quick", help="compare counts; read ids only where they differ")


COULD_NOT_CHECK = 2


def _reconcile(*, repair: bool, quick: bool) -> ReconcileReport:
    async def main() -> ReconcileReport:
        async with _tools() as tools:
            return await tools.reconciler.run(repair=repair, deep=not quick)

    try:
        report = asyncio.run(main())
    except (DataDirError, PyMongoError, SQLAlchemyError, OSError, RuntimeError) as exc:
        detail = str(exc).splitlines()[0] if str(exc) else ""
        console.print(f"[red]could not check: {type(exc).__name__}: {detail}[/]", soft_wrap=True)
        raise typer.Exit(COULD_NOT_CHECK) from None
    _print(report, repaired=repair)
    return report


@sync_app.command("check")
def check(quick: Annotated[bool, QUICK] = False) -> None:
    """Compare both stores conversation by conversation; exit 1 when they differ, 2 when they
    could not be compared."""
    report = _reconcile(repair=False, quick=quick)
    raise typer.Exit(0 if report.clean else 1)


@sync_app.command("repair")
def repair(quick: Annotated[bool, QUICK] = False) -> None:
    """Fix every difference, SQL being the source of truth; exit 1 if some could not be, 2 if
    the stores could not be compared."""
    report = _reconcile(repair=True, quick=quick)
    raise typer.Exit(0 if all(d.repaired for d in report.drifts) else 1)


if __name__ == "__main__":
    sync_app()
