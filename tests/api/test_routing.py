"""Routing through ``api.routing.Router`` (a router turns down at once a path none of its routes
can match): every route of the app is still reached by its own path and method, and what no
route answers (404, 405, the trailing-slash redirect) answers as before."""

from __future__ import annotations

import re
import uuid
from typing import Any

import httpx
from fastapi.routing import APIRoute

from employeevirtual.runtime import Runtime


def _routes(app: Any) -> list[tuple[str, str, Any]]:
    """(method, path template, endpoint) of every route FastAPI serves, the docs' included."""
    found = []
    for route in app.routes:
        contexts: Any = getattr(route, "effective_route_contexts", None)
        if contexts is None:
            methods = getattr(route, "methods", None) or ()
            if hasattr(route, "path") and methods:
                found += [(m, route.path, route.endpoint) for m in methods if m != "HEAD"]
            continue
        for context in contexts():
            methods = getattr(context, "methods", None) or getattr(route, "methods", ())
            found += [(m, context.path, context.endpoint) for m in methods if m != "HEAD"]
    return found


async def _routed(app: Any, method: str, path: str) -> tuple[int, Any]:
    """The status and the endpoint that answered a bare request (no credentials, no body)."""
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"testserver")],
        "client": ("203.0.113.9", 50000),
        "server": ("testserver", 80),
        "state": {},
    }
    status = 0

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status, scope.get("endpoint")


async def test_every_route_is_reached_by_its_own_path(
    app_and_runtime: tuple[Any, Runtime],
) -> None:
    app, _ = app_and_runtime
    routes = _routes(app)
    served = {(method, template) for method, template, _ in routes}
    assert {("POST", "/api/chat/agent"), ("POST", "/v1/chat/completions")} <= served
    assert len(routes) > 60, routes
    for method, template, endpoint in routes:
        path = re.sub(r"\{[^}]+\}", str(uuid.uuid4()), template)
        status, answered = await _routed(app, method, path)
        assert answered is endpoint, (method, template, status, answered)
        assert status != 405, (method, template)


# what no API route answers, as the app answered before ``Router``: the web console's mount (last,
# GET only) takes the rest, so another method gets its 405; no trailing-slash redirects
_UNROUTED = [
    ("POST", "/api/chat/agents", 405, "GET, HEAD"),  # a head of the chat router's
    ("GET", "/api/chat/agents", 404, None),
    ("GET", "/api/nothing-here", 404, None),
    ("POST", "/api/nothing-here", 405, "GET, HEAD"),
    ("GET", "/api/chat/agent", 404, None),
    ("PUT", "/api/chat/agent", 405, "GET, HEAD"),
    ("GET", "/api/agents/", 404, None),
    ("GET", "/health/live/", 404, None),
    ("POST", "/v1/chat/completion", 405, "GET, HEAD"),
    ("DELETE", "/v1/models", 405, "GET, HEAD"),
]


async def test_what_no_route_answers_is_unchanged(client: httpx.AsyncClient) -> None:
    for method, path, status, allow in _UNROUTED:
        r = await client.request(method, path, follow_redirects=False)
        assert (r.status_code, r.headers.get("allow")) == (status, allow), (method, path)
        if path.startswith("/v1/"):
            assert r.json()["error"]["message"] == "Method Not Allowed"
        else:
            assert r.json() == {"detail": "Method Not Allowed" if status == 405 else "Not Found"}


async def test_a_chat_turn_tries_only_the_chat_routers_routes(
    app_and_runtime: tuple[Any, Runtime], monkeypatch: Any
) -> None:
    """What ``Router`` is for: a request is matched against the routes of the routers whose
    paths can hold it, not against every route before the one that answers."""
    app, _ = app_and_runtime
    tried: list[str] = []
    matches = APIRoute.matches

    def counted(self: APIRoute, scope: Any) -> Any:
        tried.append(self.path)
        return matches(self, scope)

    monkeypatch.setattr(APIRoute, "matches", counted)
    _, answered = await _routed(app, "POST", "/api/chat/agent")
    assert answered is not None and answered.__name__ == "chat_with_agent"
    assert tried and all(path.startswith("/api/chat/") for path in tried), tried
