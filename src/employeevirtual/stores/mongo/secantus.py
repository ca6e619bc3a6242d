"""Launch SecantusDB (a GPL-2.0 MongoDB-wire-protocol server) as a child process.

SecantusDB is never imported: it runs as a separate process through its command
``secantusd-py`` (installed by the optional extra ``employeevirtual[secantus]``). This module
only spawns that command, waits until a ``ping`` over the wire succeeds, and stops it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import os
import shutil
import signal
import socket
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Self
from urllib.parse import quote_plus

from pymongo import AsyncMongoClient

from employeevirtual.stores.mongo.storage_holder import STARTED_BY_ENV

_PR_SET_PDEATHSIG = 1

__all__ = ["SecantusServer", "secantus_command"]

_COMMAND = "secantusd-py"
_HOST = "127.0.0.1"
_LOG_TAIL_BYTES = 4000


def secantus_command() -> str:
    """Path of the ``secantusd-py`` command: next to ``sys.executable`` first, then ``PATH``."""
    exe_dir = Path(sys.executable).parent
    for name in (_COMMAND, f"{_COMMAND}.exe"):
        candidate = exe_dir / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which(_COMMAND)
    if found:
        return found
    raise RuntimeError(
        f"SecantusDB command {_COMMAND!r} not found next to {sys.executable} nor on PATH; "
        "install it with: pip install 'employeevirtual[secantus]'"
    )


def _child_setup() -> None:
    """Runs in the child before exec (Linux only).

    - Its own process group: Ctrl-C in a terminal, or a SIGTERM to the server's group
      (systemd's default stop), reaches only the server, which drains its in-flight turns,
      flushes, and stops the child last.
    - Die with the parent: a server killed with SIGKILL takes its database along, so no orphan
      keeps the data directory and port locked for the next start.
    """
    os.setpgid(0, 0)
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((_HOST, 0))
        port: int = sock.getsockname()[1]
        return port


class SecantusServer:
    """A SecantusDB child process speaking the MongoDB wire protocol on 127.0.0.1."""

    def __init__(
        self,
        *,
        storage_path: str,
        port: int | None = None,
        enable_test_commands: bool = False,
        log_path: str | None = None,
        extra_args: Sequence[str] = (),
        credentials: tuple[str, str] | None = None,
    ) -> None:
        """``storage_path``: a WiredTiger directory (created if missing, kept across restarts) or
        ``":memory:"``. ``port``: ``None`` picks a free one on first ``start`` and keeps it for
        restarts. ``log_path``: where stdout/stderr go (appended); default a temp file removed by
        ``stop``. ``extra_args``: more ``secantusd-py`` flags, e.g. ``["--sync-on-commit"]``.
        """
        self._storage_path = storage_path
        self._port = port
        self._enable_test_commands = enable_test_commands
        self._log_path = log_path
        self._extra_args = tuple(extra_args)
        # with --auth: the user the URL logs in as (SCRAM-SHA-256, authSource admin)
        self._credentials = credentials
        self._proc: asyncio.subprocess.Process | None = None
        self._log_file: IO[bytes] | None = None
        self._owned_log: str | None = None  # temp log we created (removed on stop)
        # For ":memory:" the child makes its WiredTiger dir under TMPDIR and only removes it on a
        # clean shutdown; point TMPDIR at a dir of ours so stop() also cleans up after kill().
        self._tmpdir: str | None = None

    # -- properties -------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("SecantusServer has no port yet; call start() first")
        return self._port

    @property
    def url(self) -> str:
        if self._credentials is None:
            return f"mongodb://{_HOST}:{self.port}/?directConnection=true"
        user, password = (quote_plus(part) for part in self._credentials)
        return (
            f"mongodb://{user}:{password}@{_HOST}:{self.port}/"
            "?directConnection=true&authSource=admin"
        )

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    @property
    def returncode(self) -> int | None:
        """The exit code once the child has exited (negative: the signal that ended it)."""
        return None if self._proc is None else self._proc.returncode

    async def wait(self) -> int | None:
        """Until the child exits (at once when none was started)."""
        return None if self._proc is None else await self._proc.wait()

    # -- lifecycle --------------------------------------------------------------------------

    def _command_line(self) -> list[str]:
        args = [
            secantus_command(),
            "--host",
            _HOST,
            "--port",
            str(self.port),
            "--storage-path",
            self._storage_path,
        ]
        if self._enable_test_commands:
            args.append("--enable-test-commands")
        args.extend(self._extra_args)
        return args

    def _open_log(self) -> IO[bytes]:
        if self._log_path is not None:
            Path(self._log_path).parent.mkdir(parents=True, exist_ok=True)
            return open(self._log_path, "ab")
        if self._owned_log is None:
            fd, name = tempfile.mkstemp(prefix="secantusd-", suffix=".log")
            os.close(fd)
            self._owned_log = name
        return open(self._owned_log, "ab")

    def _close_log(self) -> None:
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def log_tail(self, max_bytes: int = _LOG_TAIL_BYTES) -> str:
        """The last ``max_bytes`` of the server's log (stdout and stderr)."""
        path = self._log_path or self._owned_log
        if path is None:
            return ""
        try:
            with open(path, "rb") as fh:
                fh.seek(0, os.SEEK_END)
                size = fh.tell()
                fh.seek(max(0, size - max_bytes))
                return fh.read().decode("utf-8", errors="replace")
        except OSError:
            return ""

    async def start(self, timeout: float = 30.0) -> None:  # noqa: ASYNC109 - public API
        """Spawn the server and wait until it answers ``ping``.

        Raises ``RuntimeError`` (with the tail of its log) if it exits or does not answer in
        ``timeout`` seconds. Calling ``start`` again after ``stop``/``kill`` restarts it on the
        same port and storage path.
        """
        if self.running:
            return
        if self._port is None:
            self._port = _free_port()
        command = self._command_line()
        self._close_log()
        self._log_file = self._open_log()
        self._log_file.write(f"--- starting: {' '.join(command)}\n".encode())
        self._log_file.flush()
        # who started it: a later start can tell a leftover of a dead server from a live one's
        env = {**os.environ, STARTED_BY_ENV: str(os.getpid())}
        if self._storage_path == ":memory:":
            if self._tmpdir is None:
                self._tmpdir = tempfile.mkdtemp(prefix="secantus-mem-")
            env.update(TMPDIR=self._tmpdir, TEMP=self._tmpdir, TMP=self._tmpdir)
        self._proc = await asyncio.create_subprocess_exec(
            *command,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=asyncio.subprocess.STDOUT,
            preexec_fn=_child_setup if sys.platform == "linux" else None,
        )
        try:
            await self._wait_ready(timeout)
        except BaseException:
            await self.kill()
            self._finish()
            raise

    async def _wait_ready(self, limit: float) -> None:
        proc = self._proc
        assert proc is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + limit
        client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(
            self.url,
            serverSelectionTimeoutMS=250,
            connectTimeoutMS=250,
            retryWrites=False,
            retryReads=False,
        )
        try:
            while True:
                if proc.returncode is not None:
                    raise RuntimeError(
                        f"SecantusDB exited with code {proc.returncode} during start-up; "
                        f"log tail:\n{self.log_tail()}"
                    )
                try:
                    await client.admin.command("ping")
                    return
                except Exception:
                    pass
                if loop.time() >= deadline:
                    raise RuntimeError(
                        f"SecantusDB did not answer ping on port {self.port} within {limit}s; "
                        f"log tail:\n{self.log_tail()}"
                    )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(proc.wait(), 0.05)
        finally:
            await client.close()

    async def stop(self, timeout: float = 10.0) -> None:  # noqa: ASYNC109 - public API
        """SIGTERM, then SIGKILL if it has not exited after ``timeout`` seconds. Idempotent."""
        proc = self._proc
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self._exit_after_sigterm(proc), timeout)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        self._finish()

    async def _exit_after_sigterm(self, proc: asyncio.subprocess.Process) -> None:
        """Until the child exits, knocking on its port meanwhile. SecantusDB's stop closes its
        listening socket, which does not wake its accept thread out of ``accept()``, and then
        waits 2 s for that thread before it drains its connections and closes its storage: a
        connection to the port wakes the thread, and the stop goes on at once (≈ 0.1 s in all
        instead of ≈ 2 s, for every stop and for the first start's provisioning)."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), 0.05)
                return
            with contextlib.suppress(OSError, TimeoutError):
                _, writer = await asyncio.wait_for(asyncio.open_connection(_HOST, self.port), 0.5)
                writer.close()

    async def kill(self) -> None:
        """SIGKILL the server (for fault tests). ``start`` may be called again afterwards."""
        proc = self._proc
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
        self._close_log()

    def _finish(self) -> None:
        self._close_log()
        if self._owned_log is not None:
            with contextlib.suppress(OSError):
                os.unlink(self._owned_log)
            self._owned_log = None
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
