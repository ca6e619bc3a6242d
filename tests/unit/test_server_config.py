"""`employeevirtual serve`'s uvicorn configuration: every limit explicit, uvicorn's own
forwarded-header trust off whatever the environment says, and the validation handler able to
render any input."""

from __future__ import annotations

import json

import pytest
from fastapi.exceptions import RequestValidationError
from starlette.requests import Request
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from employeevirtual.api.errors import _validation_error
from employeevirtual.api.server import server_config
from employeevirtual.settings import Settings


def test_serve_passes_every_limit_and_trusts_no_proxy_by_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", "*")  # uvicorn's own variable: must not count
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.forwarded_allow_ips == []

    async def app(scope: object, receive: object, send: object) -> None:
        return None

    config = server_config(app, settings, host="127.0.0.1", port=0)
    assert config.proxy_headers is False
    assert config.forwarded_allow_ips == ""
    assert config.access_log is False
    assert config.timeout_keep_alive == settings.keep_alive_seconds
    assert config.limit_concurrency == settings.max_connections
    assert config.h11_max_incomplete_event_size == settings.max_header_bytes
    config.load()
    assert not isinstance(config.loaded_app, ProxyHeadersMiddleware)


def test_forwarded_allow_ips_is_parsed_and_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EV_FORWARDED_ALLOW_IPS", "10.0.0.1, 192.168.0.0/16")
    assert Settings(_env_file=None).forwarded_allow_ips == ["10.0.0.1", "192.168.0.0/16"]  # type: ignore[call-arg]
    monkeypatch.setenv("EV_FORWARDED_ALLOW_IPS", "proxy.example")
    with pytest.raises(ValueError, match="not an IP address"):
        Settings(_env_file=None)  # type: ignore[call-arg]


async def test_validation_errors_render_any_input() -> None:
    error = RequestValidationError(
        [
            {"type": "string_type", "loc": ("body", "name"), "msg": "bad", "input": "\ud800"},
            {"type": "float_type", "loc": ("body", "t"), "msg": "bad", "input": float("nan")},
            {"type": "x", "loc": ("body", "u"), "msg": "bad", "input": float("-inf")},
        ]
    )
    request = Request({"type": "http", "method": "POST", "path": "/api/agents", "headers": []})
    response = await _validation_error(request, error)
    assert response.status_code == 422
    detail = json.loads(response.body)["detail"]
    assert [d["input"] for d in detail] == ["\\ud800", "nan", "-inf"]
