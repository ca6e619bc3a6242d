"""The processes a fault scenario runs and breaks: SecantusDB, the server, a relay."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import os
import signal
import socket
import sys
import uuid
from pathlib import Path
from typing import IO, Any

import httpx
from pymongo import AsyncMongoClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from employeevirtual.stores.mongo.secantus import SecantusServer
from employeevirtual.stores.sql.engine import create_engine
from tools import subprocess_env

__all__ = ["Cluster"]


def _die_with_parent() -> None:
    """In the child before exec (Linux): a harness that dies takes its processes along."""
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Cluster:
    """One scenario's world: its own SecantusDB (on disk, test commands on), its own SQL
    database (a SQLite file, or a schema of its own on PostgreSQL), the server as a uvicorn
    subprocess (``tools.faults.server``: the app with the fault hooks), and optionally
    ``python -m employeevirtual.sync.cli run`` as a relay process."""

    def __init__(
        self, workdir: Path, *, name: str, postgres_url: str | None, embedded: bool = False
    ) -> None:
        """``embedded``: no SecantusDB of the harness; the server runs its own embedded one (a
        supervised child in its data dir), found through ``<data dir>/mongodb.url``."""
        self.workdir = workdir
        self.embedded = embedded
        workdir.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.mongo = SecantusServer(
            storage_path=str(workdir / "mongo"),
            enable_test_commands=True,
            log_path=str(workdir / "secantus.log"),
        )
        self.port = _free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.postgres = postgres_url is not None
        self.schema = f"faults_{name}_{uuid.uuid4().hex[:8]}" if postgres_url else "empl"
        self.sql_url = postgres_url or f"sqlite+aiosqlite:///{workdir / 'ev.db'}"
        self.mongo_database = f"ev_faults_{name}"
        self.server: asyncio.subprocess.Process | None = None
        self.relay: asyncio.subprocess.Process | None = None
        self._logs: list[IO[bytes]] = []
        self.engine: AsyncEngine = create_engine(self.sql_url, schema=self.schema)

    # -- environment ----------------------------------------------------------------------------

    def env(self, **extra: Any) -> dict[str, str]:
        values: dict[str, Any] = {
            "EV_DATA_DIR": self.workdir / "data",
            "EV_DATABASE_URL": self.sql_url,
            "EV_DATABASE_SCHEMA": self.schema,
            "EV_MONGODB_DATABASE": self.mongo_database,
            "EV_MONGODB_TIMEOUT_MS": 500,
            "EV_SECRET_KEY": "fault-injection-" + "x" * 32,
            "EV_HOST": "127.0.0.1",
            "EV_PORT": self.port,
            "EV_LOG_LEVEL": "WARNING",
            "EV_SYNC_INTERVAL_SECONDS": 0.2,
            "EV_SYNC_GRACE_SECONDS": 1,
            "EV_SYNC_MAX_BACKOFF_SECONDS": 1,
            "EV_SYNC_RECONCILE_SECONDS": 0,  # the relay alone must converge the stores
            "EV_IDEMPOTENCY_LEASE_SECONDS": 5,  # a crashed owner's key frees up quickly
            "EV_AGENT_TIMEOUT_SECONDS": 4,
            # the load is many clients of few users from one address: no rate limits here
            "EV_MAX_CONCURRENT_TURNS": 1000,
            "EV_RATE_LIMIT_CHAT": 1_000_000,
            "EV_RATE_LIMIT_GLOBAL": 1_000_000,
        }
        if not self.embedded:
            values["EV_MONGODB_URL"] = self.mongo.url
        values.update(extra)
        env = {k: v for k, v in os.environ.items() if not k.startswith("EV_")}
        env.update({k: str(v) for k, v in values.items()})
        return subprocess_env(env)

    def _log(self, name: str) -> IO[bytes]:
        handle = open(self.workdir / f"{name}.log", "ab")  # noqa: SIM115 - closed on exit
        self._logs.append(handle)
        return handle

    async def _spawn(self, args: list[str], log: str, **env: Any) -> asyncio.subprocess.Process:
        out = self._log(log)
        return await asyncio.create_subprocess_exec(
            sys.executable,
            *args,
            env=self.env(**env),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=out,
            stderr=asyncio.subprocess.STDOUT,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )

    # -- the server ---------------------------------------------------------------------------

    async def start_server(self, **env: Any) -> None:
        self.server = await self._spawn(
            [
                "-m",
                "uvicorn",
                "tools.faults.server:create_app",
                "--factory",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--log-level",
                "warning",
                "--no-access-log",
            ],
            "server",
            **env,
        )
        await self.wait_server()

    async def wait_server(self, timeout: float = 60.0) -> None:  # noqa: ASYNC109
        proc = self.server
        assert proc is not None
        async with httpx.AsyncClient(base_url=self.base_url, timeout=1.0) as client:
            async with asyncio.timeout(timeout):
                while True:
                    if proc.returncode is not None:
                        raise RuntimeError(
                            f"server exited with {proc.returncode}; see {self.workdir}/server.log"
                        )
                    with contextlib.suppress(httpx.HTTPError):
                        if (await client.get("/health/live")).status_code == 200:
                            return
                    await asyncio.sleep(0.1)

    async def stop_server(self) -> None:
        await _stop(self.server)

    # -- the relay process --------------------------------------------------------------------

    async def start_relay(self, **env: Any) -> asyncio.subprocess.Process:
        self.relay = await self._spawn(["-m", "employeevirtual.sync.cli", "run"], "relay", **env)
        return self.relay

    async def kill_relay(self) -> None:
        await _kill(self.relay)

    async def stop_relay(self) -> None:
        await _stop(self.relay)

    # -- MongoDB faults -----------------------------------------------------------------------

    async def fail_point(self, mode: Any, data: dict[str, Any] | None = None) -> None:
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
            self.mongo.url, serverSelectionTimeoutMS=5000
        )
        try:
            command: dict[str, Any] = {"configureFailPoint": "failCommand", "mode": mode}
            if data is not None:
                command["data"] = data
            await client.admin.command(command)
        finally:
            await client.close()

    # -- lifecycle ----------------------------------------------------------------------------

    @property
    def mongo_url(self) -> str:
        """Where the stores' MongoDB listens: the harness's, or the server's embedded one."""
        if not self.embedded:
            return self.mongo.url
        return (self.workdir / "data" / "mongodb.url").read_text().strip()

    def secantus_child_pid(self) -> int | None:
        """The server's embedded SecantusDB child (a process whose parent is the server)."""
        assert self.server is not None
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                status = (entry / "status").read_text()
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            ppid = next((ln.split()[1] for ln in status.splitlines() if ln.startswith("PPid:")), "")
            if ppid == str(self.server.pid) and b"secantusd" in cmdline:
                return int(entry.name)
        return None

    async def kill_secantus_child(self) -> int | None:
        pid = self.secantus_child_pid()
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return pid

    # -- SQL faults -----------------------------------------------------------------------------

    async def fail_commits(self, percent: int) -> None:
        """From now on, about ``percent`` % of the transactions inserting chat messages fail at
        COMMIT (a deferred check: the response was already rendered inside the transaction)."""
        async with self.engine.begin() as conn:
            if self.postgres:
                s = f'"{self.schema}"'
                await conn.execute(
                    text(
                        f"CREATE OR REPLACE FUNCTION {s}.ev_fail_commit() RETURNS trigger "
                        f"LANGUAGE plpgsql AS $$ BEGIN IF random() * 100 < {int(percent)} THEN "
                        "RAISE EXCEPTION 'injected failure at COMMIT'; END IF; RETURN NULL; END $$"
                    )
                )
                await conn.execute(
                    text(
                        f"CREATE CONSTRAINT TRIGGER ev_fail_commit AFTER INSERT ON {s}.messages "
                        "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW "
                        f"EXECUTE FUNCTION {s}.ev_fail_commit()"
                    )
                )
                return
            # SQLite checks deferred foreign keys at COMMIT: a trigger breaks one at random
            await conn.execute(text("CREATE TABLE IF NOT EXISTS ev_fault_parent (id INTEGER)"))
            await conn.execute(
                text(
                    "CREATE TABLE IF NOT EXISTS ev_fault_child (parent INTEGER REFERENCES "
                    "ev_fault_parent(id) DEFERRABLE INITIALLY DEFERRED)"
                )
            )
            await conn.execute(
                text(
                    "CREATE TRIGGER ev_fail_commit AFTER INSERT ON messages "
                    f"WHEN abs(random()) % 100 < {int(percent)} "
                    "BEGIN INSERT INTO ev_fault_child VALUES (42); END"
                )
            )

    async def heal_commits(self) -> None:
        async with self.engine.begin() as conn:
            if self.postgres:
                await conn.execute(
                    text(f'DROP TRIGGER IF EXISTS ev_fail_commit ON "{self.schema}".messages')
                )
            else:
                await conn.execute(text("DROP TRIGGER IF EXISTS ev_fail_commit"))

    async def __aenter__(self) -> Cluster:
        if not self.embedded:
            await self.mongo.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop_relay()
        await self.stop_server()
        await self.mongo.stop()
        if self.postgres:
            async with self.engine.begin() as conn:
                await conn.execute(text(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE'))
        await self.engine.dispose()
        for handle in self._logs:
            handle.close()


async def _kill(proc: asyncio.subprocess.Process | None) -> None:
    if proc is not None and proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGKILL)
        await proc.wait()


async def _stop(proc: asyncio.subprocess.Process | None, timeout: float = 15.0) -> None:  # noqa: ASYNC109
    if proc is not None and proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), timeout)
        except TimeoutError:
            await _kill(proc)
