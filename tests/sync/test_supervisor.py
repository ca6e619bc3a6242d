"""The embedded SecantusDB's supervisor restarts a child that stops accepting writes (issue 9,
item 4), on a real SecantusDB whose writes fail through its ``failCommand`` fail point."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from pymongo import AsyncMongoClient

from employeevirtual.stores.mongo.documents import DocumentStore
from employeevirtual.stores.mongo.secantus import SecantusServer
from employeevirtual.stores.mongo.supervisor import SecantusSupervisor
from support.stores import mongo_failing


async def test_a_secantusdb_that_stops_accepting_writes_is_restarted(tmp_path: Path) -> None:
    """What WiredTiger does after a panic on a full disk: ``ping`` answers, writes fail. The
    fail point lives in the server's memory, so a restart clears it as it clears a panic."""
    server = SecantusServer(
        storage_path=str(tmp_path / "mongo"),
        enable_test_commands=True,
        log_path=str(tmp_path / "secantus.log"),
    )
    await server.start()
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(server.url, timeoutMS=2000)
    documents = DocumentStore(client["probe"], window=10)
    restarted = asyncio.Event()
    supervisor = SecantusSupervisor(
        server,
        probe=lambda: documents.probe_write("me"),
        interval=0.1,
        write_failures=3,
        on_restart=restarted.set,
    )
    try:
        supervisor.start()
        await documents.probe_write("me")
        first_pid = server.pid
        async with mongo_failing(server.url, ("update",)):
            await documents.ping()
            async with asyncio.timeout(30):
                await restarted.wait()
        assert supervisor.restarts == 1
        assert server.pid != first_pid
        assert supervisor.last_write_error is not None
        await documents.probe_write("me")  # writes work again
    finally:
        await supervisor.stop()
        await client.close()
        await server.stop()
