"""A server restarted right after a crash: its embedded SecantusDB waits for the previous one.

The previous server's SecantusDB child gets SIGTERM when its parent dies and holds its storage
directory's lock until it has closed its files; a new server on the same data dir starts its
own SecantusDB once that lock is free instead of failing to start."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from pymongo import AsyncMongoClient

from employeevirtual.stores.mongo import secantus
from employeevirtual.stores.mongo.secantus import start_embedded


async def _answers(url: str) -> bool:
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(
        url, serverSelectionTimeoutMS=5000
    )
    try:
        await client.admin.command("listDatabases", nameOnly=True)  # needs the credentials
        return True
    finally:
        await client.close()


async def test_a_second_start_waits_until_the_first_has_let_go(tmp_path: Path) -> None:
    first = await start_embedded(tmp_path)
    stopped = asyncio.Event()

    async def stop_soon() -> None:
        await asyncio.sleep(1.5)  # the second start finds the storage locked meanwhile
        await first.stop()
        stopped.set()

    stopper = asyncio.create_task(stop_soon())
    second = await start_embedded(tmp_path)
    try:
        await stopper
        assert stopped.is_set()
        assert second.running and not first.running
        assert "already being managed by another process" in second.log_tail(1_000_000)
        assert await _answers(second.url)
    finally:
        await second.stop()
        await first.stop()


async def test_a_storage_held_for_good_still_fails_with_the_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(secantus, "STORAGE_BUSY_WAIT_SECONDS", 1.0)
    first = await start_embedded(tmp_path)
    try:
        with pytest.raises(RuntimeError, match="already being managed by another process"):
            await start_embedded(tmp_path)
        assert await _answers(first.url)
    finally:
        await first.stop()
