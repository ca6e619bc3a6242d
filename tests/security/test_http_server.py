"""The server as `employeevirtual serve` runs it, over real sockets: forwarded headers only from
named proxies, bounded headers, no slow clients holding connections, no query strings in logs."""

from __future__ import annotations

import asyncio
import logging
from urllib.parse import urlsplit

import httpx
import pytest

from employeevirtual.main import create_app
from employeevirtual.settings import Settings
from support.access import audit_rows
from support.api import PASSWORD, register_and_login
from support.server import serving


async def _raw(base: str, payload: bytes, *, read_timeout: float = 10.0) -> bytes:
    url = urlsplit(base)
    reader, writer = await asyncio.open_connection(url.hostname, url.port)
    try:
        writer.write(payload)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), read_timeout)
    finally:
        writer.close()


async def _audit_ips(base: str, headers: dict[str, str]) -> list[str | None]:
    async with httpx.AsyncClient(base_url=base) as c:
        r = await c.get("/api/admin/audit", headers=headers)
    return [row.get("client_ip") for row in r.json()["items"]] if r.status_code == 200 else []


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_forwarded_for_is_ignored_unless_the_proxy_is_named(settings: Settings) -> None:
    limited = settings.model_copy(update={"rate_limit_global": 5})
    async with serving(limited) as (base, _app), httpx.AsyncClient(base_url=base) as c:
        codes = []
        for i in range(8):
            r = await c.get("/api/agents", headers={"X-Forwarded-For": f"198.51.100.{i}"})
            codes.append(r.status_code)
        # rotating the header does not reset the per-address limit: the peer is 127.0.0.1
        assert codes[:5] == [401] * 5 and codes[5:] == [429] * 3, codes

    behind_proxy = settings.model_copy(
        update={"rate_limit_global": 5, "forwarded_allow_ips": ["127.0.0.1"]}
    )
    async with serving(behind_proxy) as (base, _app), httpx.AsyncClient(base_url=base) as c:
        codes = []
        for i in range(8):
            r = await c.get("/api/agents", headers={"X-Forwarded-For": f"198.51.100.{i}"})
            codes.append(r.status_code)
        # the named proxy speaks for each client: eight addresses, one request each
        assert codes == [401] * 8, codes


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_huge_headers_are_refused_and_slow_clients_dropped(settings: Settings) -> None:
    quick = settings.model_copy(update={"header_timeout_seconds": 1.0})
    async with serving(quick) as (base, _app):
        big = b"GET /health/live HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * 2_000_000 + b"\r\n\r\n"
        answer = await _raw(base, big)
        assert answer.startswith(b"HTTP/1.1 400"), answer[:80]
        ok = await _raw(base, b"GET /health/live HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        assert ok.startswith(b"HTTP/1.1 200"), ok[:80]
        # slow loris: a header line, then nothing; the server closes within the deadline
        url = urlsplit(base)
        loop = asyncio.get_running_loop()
        started = loop.time()
        reader, writer = await asyncio.open_connection(url.hostname, url.port)
        writer.write(b"GET /health/live HTTP/1.1\r\nHost: t\r\n")
        await writer.drain()
        assert await asyncio.wait_for(reader.read(), 15) == b""  # closed, nothing answered
        assert loop.time() - started < 10
        writer.close()


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_access_log_leaves_query_strings_out(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    async with serving(settings) as (base, _app), httpx.AsyncClient(base_url=base) as c:
        headers = await register_and_login(c)
        token = headers["Authorization"].split()[1]
        with caplog.at_level(logging.INFO):
            await c.get(f"/api/agents?access_token={token}", headers=headers)
            await c.post(f"/api/chat/agent?message=my+secret+diagnosis&api_key={PASSWORD}")
    # everything the server side logged (the test's own HTTP client logs full URLs)
    text = "\n".join(rec.getMessage() for rec in caplog.records if rec.name != "httpx")
    assert '"GET /api/agents"' in text and '"POST /api/chat/agent"' in text
    for secret in (token, "secret", "diagnosis", PASSWORD, "access_token"):
        assert secret not in text


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_forged_forwarded_for_never_reaches_the_audit_log(settings: Settings) -> None:
    async with serving(settings) as (base, app), httpx.AsyncClient(base_url=base) as c:
        for i in range(3):
            r = await c.post(
                "/api/auth/login",
                data={"username": "nobody@example.com", "password": "wrong-password"},
                headers={"X-Forwarded-For": f"192.0.2.{i}"},
            )
            assert r.status_code == 401
        rows = await audit_rows(app.state.runtime, "auth.login_failed")
    assert [row["client_ip"] for row in rows] == ["127.0.0.1"] * 3


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_a_500_keeps_the_connection_and_connections_are_capped(settings: Settings) -> None:
    capped = settings.model_copy(update={"max_connections": 3})
    app = create_app(capped)

    @app.get("/api/boom")
    async def boom() -> None:
        raise RuntimeError("bug")

    app.router.routes.insert(0, app.router.routes.pop())  # before the console's catch-all
    async with serving(capped, app=app) as (base, _app):
        url = urlsplit(base)
        reader, writer = await asyncio.open_connection(url.hostname, url.port)
        request = b"GET /api/boom HTTP/1.1\r\nHost: t\r\n\r\n"
        for _ in range(2):  # the same keep-alive connection answers both
            writer.write(request)
            await writer.drain()
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            assert head.startswith(b"HTTP/1.1 500"), head
            assert b"x-request-id" in head.lower() and b"x-content-type-options" in head.lower()
            length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            body = await reader.readexactly(length)
            assert b"request_id" in body
        # with that one open, two more idle connections reach the cap: the next request is 503
        idle = [await asyncio.open_connection(url.hostname, url.port) for _ in range(2)]
        await asyncio.sleep(0.2)
        answer = await _raw(
            base, b"GET /health/live HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
        )
        assert answer.startswith(b"HTTP/1.1 503"), answer[:80]
        for _, w in [(reader, writer), *idle]:
            w.close()
