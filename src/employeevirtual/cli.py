"""The ``employeevirtual`` command: serve, migrate, create-admin."""

from __future__ import annotations

import asyncio
import getpass
import os
import sys
from typing import Annotated

import typer
from rich.console import Console

from employeevirtual.analytics.cli import analytics_app
from employeevirtual.knowledge.cli import knowledge_app
from employeevirtual.settings import Settings
from employeevirtual.sync.cli import sync_app

app = typer.Typer(help="EmployeeVirtual: chat with AI virtual employees.", no_args_is_help=True)
app.add_typer(sync_app, name="sync")
app.add_typer(knowledge_app, name="knowledge")
app.add_typer(analytics_app, name="analytics")
console = Console()


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="default: EV_HOST")] = None,
    port: Annotated[int | None, typer.Option(help="default: EV_PORT")] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="processes serving the port; default: one per core with PostgreSQL/SQL "
            "Server + EV_MONGODB_URL + EV_REDIS_URL, else 1 (SQLite and the embedded "
            "SecantusDB serve one process)",
        ),
    ] = None,
) -> None:
    """Run the API server (migrates the database and starts SecantusDB if no MongoDB URL)."""
    import uvicorn

    from employeevirtual.analytics.logs import configure_logging
    from employeevirtual.api.request_id import install_log_record_factory
    from employeevirtual.api.server import default_workers, server_config, workers_problem
    from employeevirtual.api.supervisor import command as supervisor_command
    from employeevirtual.stores.datadir import DataDirError, preflight

    settings = Settings()
    count = workers or default_workers(settings)
    problem = workers_problem(settings, count)
    if problem is not None:
        console.print(f"[red]--workers {count}: {problem}[/red]", soft_wrap=True)
        raise typer.Exit(2)
    try:
        preflight(settings)
    except DataDirError as exc:
        console.print(f"[red]{exc}[/red]", soft_wrap=True)
        raise typer.Exit(1) from None
    install_log_record_factory()
    configure_logging(settings.log_level, settings.log_format)
    console.print(
        f"EmployeeVirtual on http://{host or settings.host}:{port or settings.port} "
        f"({count} worker{'s' if count > 1 else ''}; data in {settings.data_dir}; "
        "API docs at /docs)"
    )
    if count > 1:
        # migrate once here, before the workers start (each would otherwise race to); then
        # this process becomes uvicorn's supervisor, in a module that imports little (its
        # workers re-import it when they start: api/supervisor.py says why that matters)
        asyncio.run(_migrate(settings))
        sys.stdout.flush()
        sys.stderr.flush()
        argv = supervisor_command(
            host=host or settings.host, port=port or settings.port, workers=count
        )
        os.execv(argv[0], argv)
    from employeevirtual.main import create_app

    config = server_config(
        create_app(settings), settings, host=host or settings.host, port=port or settings.port
    )
    configure_logging(settings.log_level, settings.log_format)  # after uvicorn's own setup
    uvicorn.Server(config).run()


async def _migrate(settings: Settings) -> None:
    from employeevirtual.stores.sql.engine import create_engine
    from employeevirtual.stores.sql.migrate import upgrade

    engine = create_engine(settings.sql_url, schema=settings.database_schema)
    try:
        await upgrade(engine)
    finally:
        await engine.dispose()


@app.command()
def migrate() -> None:
    """Apply the database migrations (idempotent)."""
    from employeevirtual.security.data_dir import secure_data_dir

    settings = Settings()
    secure_data_dir(settings.data_dir)
    asyncio.run(_migrate(settings))
    console.print("database is at the latest migration")


@app.command()
def worker() -> None:
    """Run the shared background jobs without serving HTTP: the relay, the reconciler, key
    purge, exports, erasure, retention, knowledge ingestion and usage rollups. For deployments
    whose API processes set EV_BACKGROUND_JOBS=false (docs/deploy.md). Stops on SIGTERM/SIGINT
    after the jobs' own shutdown (the relay copies what is still owed)."""
    import signal

    from employeevirtual.analytics.logs import configure_logging
    from employeevirtual.api.request_id import install_log_record_factory
    from employeevirtual.runtime.services import open_runtime

    settings = Settings().model_copy(update={"background_jobs": True})
    install_log_record_factory()
    configure_logging(settings.log_level, settings.log_format)

    async def _run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        runtime = await open_runtime(settings)
        try:
            runtime.start_background()
            console.print("EmployeeVirtual worker: background jobs running")
            await stop.wait()
        finally:
            await runtime.close()

    asyncio.run(_run())


@app.command("create-admin")
def create_admin(
    email: Annotated[str, typer.Option(prompt=True)],
    name: Annotated[str, typer.Option(prompt=True)] = "Admin",
    password: Annotated[
        str | None, typer.Option(help="read from a prompt when omitted", envvar="EV_ADMIN_PASSWORD")
    ] = None,
) -> None:
    """Create an administrator account (works even when sign-up is closed)."""
    from employeevirtual.errors import ServiceError
    from employeevirtual.runtime.services import open_runtime

    secret = password or getpass.getpass("Password: ")
    if len(secret) < 8:
        console.print("[red]the password needs at least 8 characters[/red]")
        raise typer.Exit(2)

    async def _run() -> None:
        runtime = await open_runtime(Settings())
        try:
            user = await runtime.accounts.register(
                email=email, password=secret, name=name, role="admin"
            )
            console.print(f"admin {user.email} created (id {user.id})")
        except ServiceError as exc:
            console.print(f"[red]{exc.message}[/red]")
            raise typer.Exit(1) from None
        finally:
            await runtime.close()

    asyncio.run(_run())


if __name__ == "__main__":
    app()
