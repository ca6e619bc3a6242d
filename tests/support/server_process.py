"""``employeevirtual serve`` as a real process in a process group of its own (like a terminal's
foreground job, or a systemd unit): for tests that signal the group, kill the server, or start
a second one on the same data dir. The embedded default (SQLite file and SecantusDB child in the
data dir) unless the test's env says otherwise."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
from pathlib import Path
from typing import Any

import httpx

COMMAND = [sys.executable, "-m", "employeevirtual.cli"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def server_env(data_dir: Path, port: int, **extra: Any) -> dict[str, str]:
    values: dict[str, Any] = {
        "EV_DATA_DIR": data_dir,
        "EV_SECRET_KEY": "server-process-test-" + "k" * 32,
        "EV_PORT": port,
        "EV_LOG_LEVEL": "WARNING",
        "EV_MAX_CONCURRENT_TURNS": 100,
        "EV_RATE_LIMIT_CHAT": 100_000,
        "EV_RATE_LIMIT_GLOBAL": 100_000,
        # no parsing child at start (~2 s of CPU): these servers' tests ingest no document
        "EV_KNOWLEDGE_PARSER_WARM_UP": "false",
    }
    values.update(extra)
    env = {k: v for k, v in os.environ.items() if not k.startswith("EV_")}
    env.update({k: str(v) for k, v in values.items()})
    return env


class ServerProcess:
    def __init__(
        self, data_dir: Path, log: Path, *, args: tuple[str, ...] = (), **env: Any
    ) -> None:
        self.args = args  # after ``serve`` (``--workers 2``)
        self.data_dir = data_dir
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.env = server_env(data_dir, self.port, **env)
        self.log = log
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self, timeout: float = 60.0) -> None:  # noqa: ASYNC109
        with open(self.log, "ab") as out:  # noqa: ASYNC230 - a log file, once
            self.proc = await asyncio.create_subprocess_exec(
                *COMMAND,
                "serve",
                *self.args,
                env=self.env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,  # its own group and session: signal it as a whole
            )
        try:
            await self._wait_live(timeout)
        except BaseException:
            # a start that failed or timed out leaves nothing running: the whole group goes
            # (the server and any workers or children it started)
            await self.kill_group()
            raise

    async def _wait_live(self, timeout: float) -> None:  # noqa: ASYNC109
        assert self.proc is not None
        async with httpx.AsyncClient(base_url=self.base_url, timeout=1.0) as client:
            try:
                async with asyncio.timeout(timeout):
                    while True:
                        if self.proc.returncode is not None:
                            raise RuntimeError(f"server exited: {self.log.read_text()[-3000:]}")
                        with contextlib.suppress(httpx.HTTPError):
                            if (await client.get("/health/live")).status_code == 200:
                                return
                        await asyncio.sleep(0.1)
            except TimeoutError:
                raise TimeoutError(
                    f"server did not answer /health/live within {timeout} s: "
                    f"{self.log.read_text(errors='replace')[-3000:]}"
                ) from None

    def signal_group(self, sig: signal.Signals) -> None:
        """What Ctrl-C in a terminal or systemd's stop does: every process of the group."""
        assert self.proc is not None
        os.killpg(self.proc.pid, sig)

    async def wait(self, timeout: float = 60.0) -> int:  # noqa: ASYNC109
        assert self.proc is not None
        return await asyncio.wait_for(self.proc.wait(), timeout)

    async def kill(self) -> None:
        """SIGKILL the server alone (its die-with-parent signal takes the child along)."""
        if self.proc is not None and self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            await self.proc.wait()

    async def kill_group(self) -> None:
        """SIGKILL every process of the group (the server, its workers, its children). Only
        while the server runs or has just exited: a group left empty for long may see its id
        reused."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        await self.proc.wait()

    async def close(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.signal_group(signal.SIGTERM)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.proc.wait(), 30)
            # whatever of the group outlived its leader's stop (a worker that hung) goes too;
            # right away, while the group's id cannot have been reused
            await self.kill_group()


async def run_cli(*args: str, env: dict[str, str], timeout: float = 120.0) -> tuple[int, str]:  # noqa: ASYNC109
    """``employeevirtual ARGS`` as a process: (exit code, stdout and stderr)."""
    proc = await asyncio.create_subprocess_exec(
        *COMMAND,
        *args,
        env={**env, "COLUMNS": "200"},
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode is not None
    return proc.returncode, out.decode(errors="replace")
