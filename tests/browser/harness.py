"""The console's test harness: a real ``uvicorn`` server on a free port, on the embedded
default (SQLite file + SecantusDB child process + the offline model), Debian's Chromium driven by
Playwright (``executable_path``: Playwright cannot download its own build here), and the public
API as tests set things up through it."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx

from tools.browser import CHROMIUM, ConsoleServer, launch_args

__all__ = ["AXE", "CHROMIUM", "PASSWORD", "SCREENSHOTS", "Api", "ConsoleServer", "launch_args"]

PASSWORD = "a-long-unusual-passphrase-42"
ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
AXE = Path(__file__).parent / "data" / "axe.min.js"


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
