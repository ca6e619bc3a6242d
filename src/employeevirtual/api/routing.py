"""The routers of our routes: FastAPI's ``APIRouter``, which turns a request down at once when
its path cannot be one of the router's routes.

FastAPI (0.16x) keeps an included router as one entry of the app's routes and, for each request,
tries every route of every router before the one that answers, at about 1.5 µs of CPU each
(a chat turn passed 17 routes, an OpenAI-compatible one 60). A route's path can only match a
request path that starts with the route's literal head (its path up to the first ``{``), so a
router none of whose heads starts the request's path answers ``Match.NONE`` without trying them:
the same answer its routes would have given, routing order and 404/405/redirects unchanged.

The heads are the routes' own paths (the router's prefix included): a ``Router`` is included
without a prefix of the includer's (``include_router(router, prefix=...)`` would leave its routes
unreachable; tests/api/test_routing.py requests every route of the app)."""

from __future__ import annotations

from fastapi import APIRouter
from starlette._utils import get_route_path
from starlette.routing import Match
from starlette.types import Scope

__all__ = ["Router"]


class Router(APIRouter):
    _heads: tuple[str, ...] | None = None
    _heads_of: int = -1  # len(self.routes) when the heads were taken (routes are only added)

    def _route_heads(self) -> tuple[str, ...] | None:
        """The routes' literal heads; None (try every route) if one has no plain path."""
        if self._heads_of != len(self.routes):
            paths = [getattr(route, "path", None) for route in self.routes]
            heads = [p.split("{", 1)[0] for p in paths if isinstance(p, str)]
            self._heads = tuple(heads) if len(heads) == len(paths) else None
            self._heads_of = len(self.routes)
        return self._heads

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        heads = self._route_heads()
        if heads is not None and not get_route_path(scope).startswith(heads):
            return Match.NONE, {}
        return super().matches(scope)
