"""Structured logs: with the JSON format every line is one JSON object carrying the request
id the response was given; OpenTelemetry off by default registers nothing."""

from __future__ import annotations

import io
import json
import logging

import httpx

from employeevirtual.analytics.logs import JsonFormatter
from employeevirtual.runtime import Runtime
from support.access import account


async def test_json_log_lines_carry_the_request_id(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    access = logging.getLogger("employeevirtual.access")
    access.addHandler(handler)
    level = access.level
    access.setLevel(logging.INFO)
    try:
        user = await account(client, name="Ana")
        r = await client.get("/api/users/me", headers=user.headers)
        assert r.status_code == 200
    finally:
        access.removeHandler(handler)
        access.setLevel(level)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    mine = [e for e in lines if "/api/users/me" in e["message"]]
    assert len(mine) == 1
    assert mine[0]["request_id"] == r.headers["X-Request-ID"]
    assert mine[0]["level"] == "INFO" and mine[0]["logger"] == "employeevirtual.access"


async def test_tracing_is_off_by_default(runtime: Runtime) -> None:
    listeners = runtime.mongo.options.event_listeners
    assert not any(type(x).__name__ == "MongoSpans" for x in listeners)
    assert runtime.settings.otel_enabled is False
