"""A real console server and Debian's Chromium, shared by the browser tests
(tests/browser) and the console benchmark (``python -m tools.console_bench``)."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

import httpx

from tools import subprocess_env

__all__ = ["CHROMIUM", "ConsoleServer", "free_port", "launch_args"]

CHROMIUM = os.environ.get("EV_CHROMIUM", "/usr/bin/chromium")


def _die_with_parent() -> None:
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG: a dead harness takes the server along


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ConsoleServer:
    """``python -m uvicorn employeevirtual.main:create_app --factory`` in its own data dir."""

    def __init__(self, workdir: Path, **env: str) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = subprocess_env(
            {
                **{k: v for k, v in os.environ.items() if not k.startswith("EV_")},
                "EV_DATA_DIR": str(workdir / "data"),
                "EV_LOG_LEVEL": "WARNING",
                **env,
            }
        )
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def start(self, timeout: float = 300.0) -> None:  # a loaded 2-core CI box took 100 s
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._log = (self.workdir / "server.log").open("ab")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "employeevirtual.main:create_app",
                "--factory",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--no-access-log",
            ],
            env=self.env,
            cwd=self.workdir,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited: {self.log_tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/health/ready", timeout=2).status_code == 200:
                    return
            time.sleep(0.2)
        raise RuntimeError(f"the server did not get ready in {timeout} s: {self.log_tail()}")

    def log_tail(self) -> str:
        path = self.workdir / "server.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._log:
            self._log.close()


def launch_args() -> list[str]:
    # Chromium's sandbox needs user namespaces, which a root CI container does not have
    return ["--no-sandbox"] if os.geteuid() == 0 else []
