"""``employeevirtual knowledge worker|reindex``: ingestion outside the server, and re-indexing
when the embedding model changes. Settings come from the same ``EV_*`` variables as the server;
every process must name the same ``EV_KNOWLEDGE_INDEX_URI`` (shared directory or object store)
and the same database."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from employeevirtual.settings import Settings

if TYPE_CHECKING:
    from employeevirtual.knowledge.service import KnowledgeService

__all__ = ["knowledge_app"]

knowledge_app = typer.Typer(
    name="knowledge", help="Knowledge bases: ingestion worker, re-indexing.", no_args_is_help=True
)
console = Console()


@asynccontextmanager
async def _service(settings: Settings) -> AsyncIterator[KnowledgeService]:
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # imported here: every ``employeevirtual`` command imports this module, and the knowledge
    # parts (Pydantic AI, LanceDB) cost seconds of CPU that ``serve`` and the others don't need
    from employeevirtual.knowledge.setup import close_knowledge, open_knowledge
    from employeevirtual.stores.sql.engine import create_engine
    from employeevirtual.stores.sql.migrate import upgrade

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = create_engine(settings.sql_url, schema=settings.database_schema)
    try:
        await upgrade(engine)
        service = await open_knowledge(settings, engine)
        try:
            yield service
        finally:
            await close_knowledge(service)
    finally:
        await engine.dispose()


@knowledge_app.command("worker")
def worker(
    once: Annotated[bool, typer.Option(help="ingest what is queued now, then exit")] = False,
) -> None:
    """Ingest queued documents (for deployments where servers set
    EV_KNOWLEDGE_INGEST_IN_SERVER=false)."""

    async def _run() -> None:
        async with _service(Settings()) as service:
            if service.unavailable is not None:
                console.print(f"[red]{service.unavailable}[/red]")
                raise typer.Exit(1)
            if once:
                total = 0
                while taken := await service.worker.run_once():
                    total += taken
                console.print(f"ingested {total} documents")
                return
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(NotImplementedError):
                    loop.add_signal_handler(sig, stop.set)
            service.worker.start()
            await stop.wait()

    asyncio.run(_run())


@knowledge_app.command("reindex")
def reindex(
    model: Annotated[
        str | None, typer.Option(help="embedding model; default: EV_EMBEDDING_MODEL")
    ] = None,
) -> None:
    """Drop every vector and queue every document again with the configured embedding model
    (after changing EV_EMBEDDING_MODEL). The server or a worker re-ingests them from the
    originals; searches answer from the documents done so far."""
    settings = Settings()
    if model is not None:
        settings = settings.model_copy(update={"embedding_model": model})

    async def _run() -> None:
        async with _service(settings) as service:
            count = await service.reindex()
        console.print(f"{count} documents queued for {settings.embedding_model}")

    asyncio.run(_run())


if __name__ == "__main__":
    knowledge_app()
