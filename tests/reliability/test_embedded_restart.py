"""A server restarted right after a crash: its embedded SecantusDB waits for the previous one.

The previous server's SecantusDB child gets SIGTERM when its parent dies and holds its storage
directory's lock until it has closed its files; a new server on the same data dir starts its
own SecantusDB once that lock is free instead of failing to start. A leftover whose server is
dead and that never lets go is killed after a grace period; one whose server still runs is
named in the error."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
from pathlib import Path

import pytest
from pymongo import AsyncMongoClient

from employeevirtual.stores.mongo import embedded
from employeevirtual.stores.mongo.embedded import start_embedded
from employeevirtual.stores.mongo.secantus import secantus_command
from employeevirtual.stores.mongo.storage_holder import STARTED_BY_ENV, storage_holders
from support.server_process import free_port


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
    monkeypatch.setattr(embedded, "STORAGE_BUSY_WAIT_SECONDS", 1.0)
    first = await start_embedded(tmp_path)
    try:
        with pytest.raises(RuntimeError, match=f"in use by process {first.pid} ") as failed:
            await start_embedded(tmp_path)
        assert "another EmployeeVirtual process uses this data dir" in str(failed.value)
        assert await _answers(first.url)  # never touched
    finally:
        await first.stop()


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"  # a zombie holds no lock (its new parent may not reap it at once)


async def test_a_leftover_that_never_lets_go_is_killed_after_the_grace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A SecantusDB whose starter has exited (the shell here, a killed server in real life),
    stopped with SIGSTOP so that it holds the storage's lock and ignores SIGTERM: the next
    start kills it once the grace has passed, and starts."""
    monkeypatch.setattr(embedded, "ORPHAN_GRACE_SECONDS", 1.0)
    storage, port = tmp_path / "mongodb", free_port()
    line = (
        f"{STARTED_BY_ENV}=$$ {secantus_command()} --host 127.0.0.1 --port {port} "
        f"--storage-path {storage} > {tmp_path / 'leftover.log'} 2>&1 & echo $!"
    )
    shell = await asyncio.create_subprocess_exec("sh", "-c", line, stdout=subprocess.PIPE)
    pid = int((await shell.communicate())[0])
    try:
        client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(
            f"mongodb://127.0.0.1:{port}/?directConnection=true", serverSelectionTimeoutMS=60_000
        )
        try:
            await client.admin.command("ping")  # it holds the storage now
        finally:
            await client.close()
        [holder] = storage_holders(str(storage))
        assert holder.pid == pid and holder.orphaned
        os.kill(pid, signal.SIGSTOP)
        with caplog.at_level(logging.WARNING, logger=embedded.__name__):
            server = await start_embedded(tmp_path)
        try:
            assert not _alive(pid)
            assert f"SecantusDB process {pid}, left by a server that died" in caplog.text
            assert await _answers(server.url)
        finally:
            await server.stop()
    finally:
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
