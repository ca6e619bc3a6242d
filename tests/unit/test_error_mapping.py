"""Database errors that escape a service map to what they mean, never to a bare 500."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.exc import IntegrityError, OperationalError

from employeevirtual.api.errors import install_error_handlers


@pytest.mark.parametrize(
    ("error", "status", "text"),
    [
        (IntegrityError("INSERT", {}, Exception("UNIQUE constraint failed")), 409, "conflicts"),
        (OperationalError("SELECT 1", {}, Exception("connection refused")), 503, "unavailable"),
        (ConnectionRefusedError(111, "refused"), 503, "unavailable"),
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
