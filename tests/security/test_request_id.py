"""Every request has an id (X-Request-ID), a client's own only via a trusted proxy; an unhandled
error is a JSON problem with that id and the security headers, logged once."""

from __future__ import annotations

import logging
import re
from typing import Any

import httpx
import pytest

from employeevirtual.main import create_app
from employeevirtual.settings import Settings


def _client(app: Any, peer: str = "203.0.113.7") -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(peer, 50000))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


async def test_every_answer_carries_a_generated_request_id(client: httpx.AsyncClient) -> None:
    seen = set()
    for path in ("/health/live", "/api/agents", "/nowhere"):
        r = await client.get(path, headers={"X-Request-ID": "planted-by-a-client-123"})
        rid = r.headers["X-Request-ID"]
        assert re.fullmatch(r"[0-9a-f]{32}", rid), rid
        seen.add(rid)
    assert len(seen) == 3


async def test_a_trusted_proxy_may_pass_its_request_id(settings: Settings) -> None:
    trusted = settings.model_copy(update={"forwarded_allow_ips": ["10.0.0.0/8"]})
    app = create_app(trusted)
    async with app.router.lifespan_context(app):
        async with _client(app, peer="10.1.2.3") as proxy:
            r = await proxy.get("/health/live", headers={"X-Request-ID": "edge-0123456789"})
            assert r.headers["X-Request-ID"] == "edge-0123456789"
            # a value a log parser would trip on is replaced, even from the proxy
            r = await proxy.get("/health/live", headers={"X-Request-ID": "a b\tc" * 4})
            assert r.headers["X-Request-ID"] != "a b\tc" * 4
        async with _client(app, peer="203.0.113.9") as outsider:
            r = await outsider.get("/health/live", headers={"X-Request-ID": "edge-0123456789"})
            assert r.headers["X-Request-ID"] != "edge-0123456789"


async def test_an_unhandled_error_is_a_json_problem_with_headers_logged_once(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(settings)

    @app.get("/api/boom")
    async def boom() -> None:
        raise RuntimeError("a bug with a secret-ish detail")

    app.router.routes.insert(0, app.router.routes.pop())  # before the console's catch-all

    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 1))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            with caplog.at_level(logging.INFO):
                r = await c.get("/api/boom")
    assert r.status_code == 500
    body = r.json()
    assert body["request_id"] == r.headers["X-Request-ID"]
    assert "secret-ish" not in r.text
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert r.headers["Content-Security-Policy"].startswith("default-src 'none'")
    errors = [rec for rec in caplog.records if rec.levelno >= logging.ERROR]
    assert len(errors) == 1, [rec.getMessage() for rec in errors]
    assert "RuntimeError" in errors[0].getMessage() and errors[0].exc_info is None
    assert body["request_id"] in errors[0].getMessage()
    tracebacks = [rec for rec in caplog.records if rec.exc_info]
    assert tracebacks == [] or all(rec.levelno == logging.DEBUG for rec in tracebacks)


async def test_log_records_carry_the_request_id(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="employeevirtual.access"):
        r = await client.get("/health/live?probe=1")
    lines = [rec for rec in caplog.records if rec.name == "employeevirtual.access"]
    assert lines and lines[-1].request_id == r.headers["X-Request-ID"]  # type: ignore[attr-defined]
    assert "/health/live" in lines[-1].getMessage() and "probe" not in lines[-1].getMessage()
