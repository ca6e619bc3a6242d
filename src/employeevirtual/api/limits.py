"""Per-request guards: the chat rate limit per user, the refusal of query parameters an
endpoint does not declare, and of input no store can hold. (The concurrent-turn slot is the
turn's own: ``chat.limits``.)"""

from __future__ import annotations

import json
import logging
from typing import Annotated, Any
from uuid import UUID

from fastapi import Depends, Request, Response
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from redis.exceptions import RedisError

from employeevirtual.api.deps import ApiKey, BearerToken, CurrentUserId, caller_id, runtime_of
from employeevirtual.api.global_limit import pending_global_hit, refusal
from employeevirtual.errors import InvalidInput, RateLimited
from employeevirtual.security.ratelimit import Hit

__all__ = [
    "ChatRateLimit",
    "ChatUserId",
    "check_input",
    "reject_hostile_input",
    "reject_unknown_query_params",
]

log = logging.getLogger(__name__)


async def _hit_chat_limit(request: Request, user_id: UUID, response: Response) -> None:
    """The user's chat window, and the global one when the middleware left it to this route
    (``api.global_limit``): one round trip, the global window first as the middleware would."""
    runtime = runtime_of(request)
    settings = runtime.settings
    limit, window = settings.rate_limit_chat, settings.rate_limit_window_seconds
    hits = [Hit(f"chat:user:{user_id}", limit, window)]
    pending = pending_global_hit(request.scope)
    if pending is not None:
        pending.taken = True
        hits.insert(0, pending.hit)
    try:
        decisions = await runtime.limiter.hit_in_order(hits)
    except RedisError as exc:  # fail open, like the global limit
        if pending is not None:
            log.warning("global rate limit skipped, Redis failed: %s", type(exc).__name__)
        log.warning("chat rate limit skipped, Redis failed: %s", type(exc).__name__)
        return
    if pending is not None:
        pending.decision = decisions[0]
    if len(decisions) < len(hits):  # the global window refused: the chat one left untouched
        (refused,) = decisions
        raise RateLimited(refusal(refused), headers=refused.headers())
    decision = decisions[-1]
    if not decision.allowed:
        raise RateLimited(
            f"at most {limit} chat requests per {window} s; retry in {decision.retry_after} s",
            headers=decision.headers(),
        )
    response.headers.update(decision.headers())


async def chat_rate_limit(request: Request, user_id: CurrentUserId, response: Response) -> None:
    await _hit_chat_limit(request, user_id, response)


ChatRateLimit = Depends(chat_rate_limit)


async def chat_user_id(
    request: Request, token: BearerToken, api_key: ApiKey, response: Response
) -> UUID:
    """``CurrentUserId`` under the chat rate limit: one dependency where ``ChatRateLimit`` and
    ``CurrentUserId`` would be two, and it authenticates the caller itself rather than through
    ``current_user_id`` (FastAPI walks a cached dependency's sub-tree again on each use, and
    each node of the tree costs every request about 7 µs of CPU)."""
    user_id = await caller_id(runtime_of(request), token, api_key)
    await _hit_chat_limit(request, user_id, response)
    return user_id


ChatUserId = Annotated[UUID, Depends(chat_user_id)]


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


async def check_input(request: Request) -> None:
    """The app-wide guard: ``reject_hostile_input``, then ``reject_unknown_query_params``, as
    one dependency (each dependency costs every request a walk in FastAPI)."""
    await reject_hostile_input(request)
    await reject_unknown_query_params(request)
