"""A real HTTP server for the app under test (streams need one), and an SSE reader."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import uvicorn


@asynccontextmanager
async def serve(app: Any) -> AsyncIterator[str]:
    """uvicorn on a free port, in this event loop; the app's lifespan is the caller's."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, lifespan="off", log_level="warning"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:  # noqa: ASYNC110 - uvicorn offers no event to wait on
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
        sock.close()


@dataclass
class Event:
    id: str | None
    event: str
    data: dict[str, Any]


async def events(response: httpx.Response) -> AsyncIterator[Event | None]:
    """Parsed events; None for each comment (heartbeat)."""
    fields: dict[str, str] = {}
    async for line in response.aiter_lines():
        if line.startswith(":"):
            yield None
            continue
        if not line:
            if fields:
                yield Event(
                    fields.get("id"), fields.get("event", "message"), json.loads(fields["data"])
                )
                fields = {}
            continue
        name, _, value = line.partition(":")
        fields[name] = value[1:] if value.startswith(" ") else value


async def read_all(response: httpx.Response) -> list[Event]:
    return [e async for e in events(response) if e is not None]
