"""Per-request guards: the chat rate limit per user and the refusal of query parameters an
endpoint does not declare. (The concurrent-turn slot is the turn's own: ``chat.limits``.)"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import Depends, Request, Response
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from redis.exceptions import RedisError

from employeevirtual.api.deps import CurrentUserId, RuntimeDep
from employeevirtual.errors import InvalidInput, RateLimited

__all__ = ["ChatRateLimit", "reject_unknown_query_params"]

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
