"""The console's test and bench harness: a real ``uvicorn`` server on a free port, on the
embedded default (SQLite file + SecantusDB child process + the offline model), and Debian's
Chromium driven by Playwright (``executable_path``: Playwright cannot download its own build
here)."""

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
import uuid
from pathlib import Path
from typing import IO, Any

import httpx

CHROMIUM = os.environ.get("EV_CHROMIUM", "/usr/bin/chromium")
PASSWORD = "a-long-unusual-passphrase-42"
ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
AXE = Path(__file__).parent / "data" / "axe.min.js"


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
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("EV_")},
            "EV_DATA_DIR": str(workdir / "data"),
            "EV_LOG_LEVEL": "WARNING",
            **env,
        }
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def start(self, timeout: float = 90.0) -> None:
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


class Api:
    """The public API as a test sets things up through it (the console under test uses the
    same endpoints)."""

    def __init__(self, base_url: str) -> None:
        self.client = httpx.Client(base_url=base_url, timeout=60)
        self.headers: dict[str, str] = {}
        self.email = ""

    def register(self, name: str = "Ana", email: str | None = None) -> Api:
        self.email = email or f"user-{uuid.uuid4().hex[:10]}@example.com"
        r = self.client.post(
            "/api/auth/register", json={"email": self.email, "password": PASSWORD, "name": name}
        )
        assert r.status_code == 201, r.text
        return self.login()

    def login(self) -> Api:
        r = self.client.post("/api/auth/login", data={"username": self.email, "password": PASSWORD})
        assert r.status_code == 200, r.text
        self.headers = {"Authorization": f"Bearer {r.json()['access_token']}"}
        return self

    def call(self, method: str, path: str, **kw: Any) -> Any:
        r = self.client.request(method, path, headers=self.headers, **kw)
        assert r.status_code < 300, (r.status_code, r.text)
        return r.json() if r.content else None

    def agent(self, name: str = "Assistente", **fields: Any) -> dict[str, Any]:
        body = {"name": name, "instructions": "Be concise.", **fields}
        return dict(self.call("POST", "/api/agents", json=body))

    def chat(self, message: str, **target: str) -> dict[str, Any]:
        return dict(self.call("POST", "/api/chat/agent", json={"message": message, **target}))

    def close(self) -> None:
        self.client.close()


def launch_args() -> list[str]:
    # Chromium's sandbox needs user namespaces, which a root CI container does not have
    return ["--no-sandbox"] if os.geteuid() == 0 else []
