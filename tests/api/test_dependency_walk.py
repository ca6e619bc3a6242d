"""The chat turn's dependency tree stays small: FastAPI walks every node of it on each request,
a cached dependency's sub-tree included, so each extra node is CPU on every turn."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant

from employeevirtual.api.global_limit import TAKEN_WITH_THE_CHAT_LIMIT
from employeevirtual.main import create_app
from employeevirtual.settings import Settings


def _walked(dependant: Dependant) -> list[str]:
    """Every dependency FastAPI solves for ``dependant``, repeats included, in its order."""
    names: list[str] = []
    for sub in dependant.dependencies:
        names += _walked(sub)
        names.append(getattr(sub.call, "__name__", type(sub.call).__name__))
    return names


def _solved_dependant(app: FastAPI, path: str) -> Dependant:
    """What FastAPI solves for ``path``: the route's dependant with the app's and the router's
    dependencies (FastAPI 0.16x keeps those on an included router's effective route)."""
    for route in app.routes:
        contexts: Any = getattr(route, "effective_route_contexts", None)
        for context in contexts() if contexts else []:
            if context.path == path:
                return context.dependant  # type: ignore[no-any-return]
    raise LookupError(path)


def test_the_chat_turn_walks_each_dependency_once(settings: Settings) -> None:
    walked = _walked(_solved_dependant(create_app(settings), "/api/chat/agent"))
    assert len(walked) == len(set(walked)), walked
    # the input guard first, then the caller's credentials, authenticated under the chat rate
    # limit in one dependency (the route reads the runtime off the request, no dependency)
    assert walked == [
        "check_input",
        "OAuth2PasswordBearer",
        "APIKeyHeader",
        "chat_user_id",
    ]


def test_every_way_into_a_turn_is_under_the_chat_rate_limit_once(settings: Settings) -> None:
    """The chat router has no router-wide limit any more (``/api/chat/agent`` takes it with its
    caller, ``ChatUserId``): a POST added to that router, or any other way into a turn, must
    still walk the limit, and only once (a second walk would count the request twice)."""
    app = create_app(settings)
    turns = {"/api/conversations/{conversation_id}/regenerate", "/v1/chat/completions"}
    checked = []
    for route in app.routes:
        contexts: Any = getattr(route, "effective_route_contexts", None)
        for context in contexts() if contexts else []:
            methods = set(getattr(context, "methods", None) or getattr(route, "methods", ()))
            starts_turn = context.path in turns or (
                context.path.startswith("/api/chat/")
                and not context.path.startswith("/api/chat/turns/")  # a live turn's events
                and "POST" in methods
            )
            if context.path == "/api/conversations/{conversation_id}/messages/{message_id}":
                starts_turn = "PATCH" in methods or "PUT" in methods  # the edit answers again
            if not starts_turn:
                continue
            walked = _walked(context.dependant)
            limits = [n for n in walked if n in ("chat_rate_limit", "chat_user_id")]
            assert len(limits) == 1, (context.path, methods, walked)
            checked.append(context.path)
    assert {"/api/chat/agent", *turns} <= set(checked), checked


def test_the_routes_that_take_the_global_hit_walk_the_chat_limit(settings: Settings) -> None:
    """The middleware leaves these routes' global rate limit hit to their chat rate limit (one
    Redis round trip for both): each must walk it, or every request would be counted late."""
    app = create_app(settings)
    for method, path in TAKEN_WITH_THE_CHAT_LIMIT:
        walks = []
        for route in app.routes:
            contexts: Any = getattr(route, "effective_route_contexts", None)
            for context in contexts() if contexts else []:
                methods = set(getattr(context, "methods", None) or getattr(route, "methods", ()))
                if context.path == path and method in methods:
                    walked = _walked(context.dependant)
                    walks.append([n for n in walked if n in ("chat_rate_limit", "chat_user_id")])
        assert len(walks) == 1 and len(walks[0]) == 1, (method, path, walks)
