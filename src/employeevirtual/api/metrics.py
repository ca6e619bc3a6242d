"""HTTP metrics: pure ASGI, one counter and one latency histogram per route template (never
the raw path: ids would explode the label set)."""

from __future__ import annotations

import time

from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from employeevirtual.analytics.metrics import observe_http

__all__ = ["HttpMetrics"]


class HttpMetrics:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def tracking_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        finally:
            observe_http(scope["method"], _route(scope), status, time.perf_counter() - started)


def _route(scope: Scope) -> str:
    """The matched route's template (``/api/conversations/{conversation_id}``), or
    ``unmatched``. Starlette leaves the route in the scope after routing; a request refused
    before routing (rate limit, body size) is matched here against the app's routes."""
    route = scope.get("route")
    if route is None:
        app = scope.get("app")
        for candidate in getattr(getattr(app, "router", None), "routes", ()):
            match, _ = candidate.matches(scope)
            if match == Match.FULL:
                route = candidate
                break
    return str(getattr(route, "path", "unmatched"))
