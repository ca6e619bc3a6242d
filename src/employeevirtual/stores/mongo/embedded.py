"""The embedded default's MongoDB: a SecantusDB child (``secantus.SecantusServer``) on the data
dir, requiring authentication as a user provisioned once, and started only once any earlier
SecantusDB on the same storage has let go of it (``storage_holder``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import signal
from pathlib import Path

from pymongo import AsyncMongoClient
from pymongo.errors import OperationFailure

from employeevirtual.stores.mongo.secantus import SecantusServer
from employeevirtual.stores.mongo.storage_holder import storage_holders

__all__ = ["ORPHAN_GRACE_SECONDS", "STORAGE_BUSY_WAIT_SECONDS", "provision", "start_embedded"]

_EMBEDDED_USER = "employeevirtual"


_log = logging.getLogger(__name__)

# WiredTiger's message when another process still holds the storage directory's lock
_STORAGE_BUSY = "already being managed by another process"
STORAGE_BUSY_WAIT_SECONDS = 30.0
# how long a leftover child of a dead server may take to close its files before it is killed
# (a normal close takes ≈ 2 s, more on a busy machine)
ORPHAN_GRACE_SECONDS = 10.0


def _busy(exc: RuntimeError) -> bool:
    return _STORAGE_BUSY in str(exc).rsplit("--- starting:", 1)[-1]


async def _start_when_storage_free(server: SecantusServer, storage: str) -> None:
    """``server.start()``, tried again while an earlier SecantusDB still holds ``storage``.

    The embedded child of a server that was just killed gets SIGTERM from the kernel (it dies
    with its parent) and takes a moment to close its files; a server restarted at once
    (systemd, an operator, a supervisor) waits for it instead of failing to start. A leftover
    that has not let go after ``ORPHAN_GRACE_SECONDS`` is killed (its server is dead, nobody
    else will stop it). A holder whose server still runs is another EmployeeVirtual process on
    the same data dir: after ``STORAGE_BUSY_WAIT_SECONDS`` the start fails and names it."""
    loop = asyncio.get_running_loop()
    began = loop.time()
    while True:
        try:
            await server.start()
            return
        except RuntimeError as exc:
            if not _busy(exc):
                raise
            holders = storage_holders(storage)
            waited = loop.time() - began
            if waited >= ORPHAN_GRACE_SECONDS:
                for holder in holders:
                    if holder.orphaned:
                        _log.warning(
                            "SecantusDB process %d, left by a server that died, still holds %s "
                            "after %.0f s; killing it",
                            holder.pid,
                            storage,
                            waited,
                        )
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(holder.pid, signal.SIGKILL)
            if waited >= STORAGE_BUSY_WAIT_SECONDS:
                live = [h for h in holders if not h.orphaned]
                if not live:
                    raise
                raise RuntimeError(
                    f"SecantusDB's storage {storage} is in use by process {live[0].pid} "
                    f"(started by process {live[0].started_by or live[0].parent}, still "
                    "running): another EmployeeVirtual process uses this data dir. Stop it, or "
                    "give each process its own EV_DATA_DIR, or point them all at one MongoDB "
                    "with EV_MONGODB_URL."
                ) from exc
            _log.info("SecantusDB's storage is still held by an earlier process; waiting")
            await asyncio.sleep(0.25)


async def provision(storage: str, log: str, password: str) -> None:
    """Create (or reset) the server's own user: SecantusDB's --auth needs one made by a start
    without auth. Bound to 127.0.0.1 like every start, and stopped at once."""
    server = SecantusServer(storage_path=storage, log_path=log)
    await _start_when_storage_free(server, storage)
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(server.url)
    try:
        try:
            await client.admin.command("createUser", _EMBEDDED_USER, pwd=password, roles=["root"])
        except OperationFailure:  # made by an earlier, interrupted provisioning
            await client.admin.command("updateUser", _EMBEDDED_USER, pwd=password)
    finally:
        await client.close()
        await server.stop()


async def _authenticated(server: SecantusServer) -> bool:
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(
        server.url, serverSelectionTimeoutMS=5000
    )
    try:
        await client.admin.command("listDatabases", nameOnly=True)
        return True
    except OperationFailure:
        return False
    finally:
        await client.close()


async def start_embedded(data_dir: Path) -> SecantusServer:
    """The embedded default's MongoDB: a SecantusDB keeping its files and log in the data dir,
    listening on 127.0.0.1 only and requiring authentication (SCRAM-SHA-256) as a user whose
    password is generated once into the data dir (0600): other local accounts that can reach the
    port cannot read or write it."""
    storage, log = str(data_dir / "mongodb"), str(data_dir / "secantus.log")
    secret = data_dir / "mongodb_password"
    for _attempt in range(2):
        if not secret.exists():
            password = secrets.token_urlsafe(32)
            await provision(storage, log, password)
            fd = os.open(secret, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(password)
        password = secret.read_text().strip()
        server = SecantusServer(
            storage_path=storage,
            log_path=log,
            extra_args=["--auth"],
            credentials=(_EMBEDDED_USER, password),
        )
        await _start_when_storage_free(server, storage)
        if await _authenticated(server):
            return server
        # a password file without its user (the database files were replaced): provision again
        await server.stop()
        secret.unlink()
    raise RuntimeError("could not provision SecantusDB's user; see secantus.log")
