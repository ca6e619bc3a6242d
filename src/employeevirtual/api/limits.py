"""Per-request guards: the chat rate limit per user, one concurrent-turn slot per turn, and
the refusal of query parameters an endpoint does not declare."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any
from uuid import UUID

from fastapi import Depends, Request, Response
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from redis.exceptions import RedisError

from employeevirtual.api.deps import CurrentUserId, RuntimeDep
from employeevirtual.errors import InvalidInput, RateLimited
from employeevirtual.runtime import Runtime
from employeevirtual.security.concurrency import NoSlotAvailable

__all__ = [
    "ChatRateLimit",
    "reject_hostile_input",
    "reject_unknown_query_params",
    "turn_slot",
]

log = logging.getLogger(__name__)


async def chat_rate_limit(runtime: RuntimeDep, user_id: CurrentUserId, response: Response) -> None:
    settings = runtime.settings
    limit, window = settings.rate_limit_chat, settings.rate_limit_window_seconds
    try:
        decision = await runtime.limiter.hit(
            f"chat:user:{user_id}", limit=limit, window_seconds=window
        )
    except RedisError as exc:  # fail open, like the global limit
        log.warning("chat rate limit skipped, Redis failed: %s", type(exc).__name__)
        return
    if not decision.allowed:
        raise RateLimited(
            f"at most {limit} chat requests per {window} s; retry in {decision.retry_after} s",
            headers=decision.headers(),
        )
    response.headers.update(decision.headers())


ChatRateLimit = Depends(chat_rate_limit)


@asynccontextmanager
async def turn_slot(runtime: Runtime, user_id: UUID) -> AsyncIterator[None]:
    """Hold one of the user's ``max_concurrent_turns`` slots; 429 when all are in use."""
    limit = runtime.settings.max_concurrent_turns
    async with AsyncExitStack() as stack:
        try:
            await stack.enter_async_context(
                runtime.concurrency.hold(f"turns:{user_id}", limit=limit)
            )
        except NoSlotAvailable:
            raise RateLimited(
                f"at most {limit} chat turns at once per user; wait for one to finish",
                headers={"Retry-After": "1"},
            ) from None
        except RedisError as exc:
            log.warning("concurrency limit skipped, Redis failed: %s", type(exc).__name__)
        yield


def _query_names(dependant: Dependant, names: set[str]) -> set[str]:
    for field in dependant.query_params:
        names.add(field.alias)
    for sub in dependant.dependencies:
        _query_names(sub, names)
    return names


async def reject_unknown_query_params(request: Request) -> None:
    """422 for a query parameter the endpoint does not declare (``?user_id=``, ``?role=``):
    silently ignoring it would hide client mistakes and make probes look accepted."""
    route: Any = request.scope.get("route")
    if not isinstance(route, APIRoute) or not request.query_params:
        return
    # a walk over a handful of fields, only for requests that carry a query string
    known = _query_names(route.dependant, set())
    unknown = sorted(set(request.query_params.keys()) - known)
    if unknown:
        allowed = ", ".join(sorted(known)) or "none"
        raise InvalidInput(
            f"unknown query parameters: {', '.join(unknown)}; this endpoint accepts: {allowed}"
        )


class _NotJSON(ValueError):
    pass


def _refuse_constant(name: str) -> Any:
    raise _NotJSON(f"{name} is not valid JSON (JSON has no NaN or Infinity); send a number or null")


def _bad_text(value: str) -> str | None:
    """Why a string cannot be stored: a NUL (PostgreSQL text refuses it) or a lone surrogate
    (not Unicode: no store or encoder accepts it)."""
    if "\x00" in value:
        return "holds a NUL character (\\u0000), which is not allowed"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "holds a lone UTF-16 surrogate (e.g. \\ud800), which is not valid Unicode"
    return None


def _walk(value: Any, where: str) -> None:
    if isinstance(value, str):
        problem = _bad_text(value)
        if problem:
            raise InvalidInput(f"{where} {problem}")
    elif isinstance(value, dict):
        for key, item in value.items():
            _walk(key, f"a key in {where}")
            _walk(item, f"{where}.{key}" if _bad_text(key) is None else where)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _walk(item, f"{where}[{index}]")


async def reject_hostile_input(request: Request) -> None:
    """422 for input no store can hold, before any route sees it: NaN/Infinity in a JSON body
    (Python's parser accepts them, JSON does not), and a NUL or a lone surrogate in any JSON
    string, form field or query parameter."""
    for name, value in request.query_params.multi_items():
        problem = _bad_text(name) or _bad_text(value)
        if problem:
            raise InvalidInput(f"query parameter {name[:40]!r} {problem}")
    content_type = request.headers.get("content-type", "")
    if request.method not in ("POST", "PUT", "PATCH"):
        return
    if "json" in content_type:
        raw = await request.body()
        if not raw:
            return
        try:
            document = json.loads(raw, parse_constant=_refuse_constant)
        except _NotJSON as exc:
            raise InvalidInput(f"the body: {exc}") from None
        except ValueError:
            return  # not JSON at all: FastAPI's own 422 (json_invalid) says so
        _walk(document, "body")
    elif "form" in content_type:
        form = await request.form()
        for name, field in form.multi_items():
            if isinstance(field, str):
                problem = _bad_text(field)
                if problem:
                    raise InvalidInput(f"form field {name[:40]!r} {problem}")
