"""A real uvicorn server, configured exactly as ``employeevirtual serve`` configures it, on a free
port in the test's event loop: for what only a real socket shows (headers, slow clients,
liveness while a turn runs)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import uvicorn

from employeevirtual.api.server import server_config
from employeevirtual.main import create_app
from employeevirtual.settings import Settings


@asynccontextmanager
async def serving(settings: Settings, app: Any = None) -> AsyncIterator[tuple[str, Any]]:
    """Yield the base URL and the app; the server stops on exit."""
    app = app if app is not None else create_app(settings)
    config = server_config(app, settings, host="127.0.0.1", port=0)
    config.log_config = None  # leave the test's logging alone
    server = uvicorn.Server(config)
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign]
    task = asyncio.create_task(server.serve())
    try:
        for _ in range(600):
            if server.started or task.done():
                break
            await asyncio.sleep(0.05)
        if task.done():
            task.result()  # raises what stopped it
        assert server.started, "uvicorn did not start within 30 s"
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}", app
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)
