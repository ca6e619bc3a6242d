"""Per-request guards: the chat rate limit per user, one concurrent-turn slot per turn, and
the refusal of query parameters an endpoint does not declare."""

from __future__ import annotations

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

__all__ = ["ChatRateLimit", "reject_unknown_query_params", "turn_slot"]

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
