"""The test MCP server (``support/mcp_server.py``) as a real process, and the settings that
let the app reach it."""

from __future__ import annotations

import asyncio
import contextlib
import shlex
import socket
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet
from pydantic import SecretStr

from support.server_process import free_port

SERVER = Path(__file__).with_name("mcp_server.py")
STDIO_COMMAND = [sys.executable, str(SERVER), "stdio"]


def _accepts(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@contextlib.asynccontextmanager
async def mcp_http_server(log: Path) -> AsyncIterator[tuple[str, int]]:
    """``(url, port)`` of a Streamable HTTP MCP server process, stopped on exit."""
    port = free_port()
    with open(log, "ab") as out:  # noqa: ASYNC230 - a log file, once
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(SERVER),
            "http",
            str(port),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=out,
            stderr=out,
        )
    try:
        deadline = time.monotonic() + 120
        while not _accepts(port):
            if proc.returncode is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the MCP test server did not start; see {log}")
            await asyncio.sleep(0.1)
        yield f"http://127.0.0.1:{port}/mcp", port
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
                await proc.wait()


def mcp_settings(port: int | None = None, **extra: Any) -> dict[str, Any]:
    """Settings that allow the test server: loopback on its port, the stdio command, a key."""
    values: dict[str, Any] = {
        "secrets_key": SecretStr(Fernet.generate_key().decode()),
        "mcp_allowed_hosts": [f"127.0.0.1:{port}"] if port else [],
        "mcp_allow_private": True,
        "mcp_stdio_commands": [shlex.join(STDIO_COMMAND)],
        "mcp_call_timeout_seconds": 3.0,
        "mcp_connect_timeout_seconds": 5.0,
        "mcp_start_timeout_seconds": 120.0,
        "mcp_catalog_seconds": 0.0,
    }
    values.update(extra)
    return values
