"""HTTP metrics: pure ASGI, one counter and one latency histogram per route template (never
the raw path: ids would explode the label set)."""

from __future__ import annotations

from starlette.routing import Match
from starlette.types import Scope

from employeevirtual.analytics.metrics import observe_http
from employeevirtual.api.middleware import AfterResponse

__all__ = ["HttpMetrics"]


class HttpMetrics(AfterResponse):
    def done(self, scope: Scope, status: int, seconds: float) -> None:
        # no answer started: the exception becomes CrashGuard's 500
        observe_http(scope["method"], _route(scope), status or 500, seconds)


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
