"""Security headers on every answer (errors included) and CORS exactly as configured."""

from __future__ import annotations

import httpx
import pytest
from pydantic import ValidationError

from employeevirtual.settings import Settings
from support.access import app_client


async def test_security_headers(client: httpx.AsyncClient) -> None:
    for url, status in (
        ("/api/agents", 401),
        ("/api/agents/not-a-uuid", 401),
        ("/health/live", 200),
        ("/openapi.json", 200),
        ("/nowhere", 404),
    ):
        r = await client.get(url)
        assert r.status_code == status, url
        assert r.headers["X-Content-Type-Options"] == "nosniff"
        assert r.headers["X-Frame-Options"] == "DENY"
        assert r.headers["Referrer-Policy"] == "no-referrer"
        assert "frame-ancestors 'none'" in r.headers["Content-Security-Policy"]
        assert "Strict-Transport-Security" not in r.headers  # not configured
        assert "access-control-allow-origin" not in r.headers  # no CORS unless configured
    assert (await client.get("/api/agents")).headers["Cache-Control"] == "no-store"
    api = await client.get("/api/agents")
    assert api.headers["Content-Security-Policy"] == "default-src 'none'; frame-ancestors 'none'"
    docs = await client.get("/docs")
    assert docs.status_code == 200
    assert "default-src" not in docs.headers["Content-Security-Policy"]  # Swagger UI can load


async def test_hsts_when_configured(settings: Settings) -> None:
    async with app_client(settings, hsts_seconds=31536000) as (client, _):
        r = await client.get("/health/live")
        assert r.headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"


async def test_cors_allows_only_configured_origins(settings: Settings) -> None:
    origin = "https://app.example.com"
    async with app_client(settings, cors_origins=[origin], cors_allow_credentials=True) as (
        client,
        _,
    ):
        preflight = {"Access-Control-Request-Method": "POST"}
        r = await client.options("/api/agents", headers={"Origin": origin, **preflight})
        assert r.status_code == 200
        assert r.headers["Access-Control-Allow-Origin"] == origin
        assert r.headers["Access-Control-Allow-Credentials"] == "true"
        r = await client.options(
            "/api/agents", headers={"Origin": "https://evil.example", **preflight}
        )
        assert r.status_code == 400
        assert "access-control-allow-origin" not in r.headers
        r = await client.get("/api/agents", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in r.headers
        r = await client.get("/api/agents", headers={"Origin": origin})
        assert r.headers["Access-Control-Allow-Origin"] == origin
        assert "Retry-After" in r.headers["Access-Control-Expose-Headers"]


def test_wildcard_with_credentials_is_refused_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValidationError, match="cannot be combined"):
        Settings(_env_file=None, cors_origins=["*"], cors_allow_credentials=True)  # type: ignore[call-arg]
    monkeypatch.setenv("EV_CORS_ORIGINS", '["*"]')
    monkeypatch.setenv("EV_CORS_ALLOW_CREDENTIALS", "true")
    with pytest.raises(ValidationError, match="list the allowed origins"):
        Settings(_env_file=None)  # type: ignore[call-arg]
    monkeypatch.setenv("EV_CORS_ALLOW_CREDENTIALS", "false")
    assert Settings(_env_file=None).cors_origins == ["*"]  # type: ignore[call-arg]


async def test_console_is_served_with_its_own_strict_csp(client: httpx.AsyncClient) -> None:
    r = await client.get("/")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert r.headers["Cache-Control"] == "no-cache"
    csp = r.headers["Content-Security-Policy"]
    for directive in (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "connect-src 'self'",
        "img-src 'self' data:",
        "frame-ancestors 'none'",
    ):
        assert directive in csp
    assert "unsafe" not in csp
    # unknown API paths stay JSON 404s with the API's policy, not the console's
    r = await client.get("/api/nowhere")
    assert r.status_code == 404 and r.json() == {"detail": "Not Found"}
    assert r.headers["Content-Security-Policy"] == "default-src 'none'; frame-ancestors 'none'"
