"""Database errors that escape a service map to what they mean, never to a bare 500."""

from __future__ import annotations

import socket

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.exc import IntegrityError, OperationalError

from employeevirtual.api.errors import install_error_handlers
from employeevirtual.stores.sql.engine import create_engine, ping


@pytest.mark.parametrize(
    ("error", "status", "text"),
    [
        (IntegrityError("INSERT", {}, Exception("UNIQUE constraint failed")), 409, "conflicts"),
        (OperationalError("SELECT 1", {}, Exception("connection refused")), 503, "unavailable"),
    ],
)
async def test_database_errors_map_to_409_or_503(error: Exception, status: int, text: str) -> None:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/boom")
    async def boom() -> None:
        raise error

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        r = await client.get("/boom")
    assert r.status_code == status
    assert text in r.json()["detail"] and "nothing was written" in r.json()["detail"]
    assert ("Retry-After" in r.headers) is (status == 503)


async def test_only_the_stores_own_connection_errors_say_the_database_is_unavailable() -> None:
    """asyncpg raises a bare ConnectionRefusedError for a server that is not there; the engine
    turns it into an OperationalError (503). Any other OSError is a plain 500."""
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    engine = create_engine(f"postgresql+asyncpg://postgres@127.0.0.1:{port}/test")
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/database")
    async def database() -> None:
        await ping(engine)

    @app.get("/file")
    async def file() -> None:
        raise FileNotFoundError(2, "No such file or directory", "/nowhere")

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            down = await client.get("/database")
            other = await client.get("/file")
    finally:
        await engine.dispose()
    assert down.status_code == 503 and "unavailable" in down.json()["detail"]
    assert down.headers["Retry-After"] == "5"
    assert other.status_code == 500 and "unavailable" not in other.text
