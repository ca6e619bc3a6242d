"""How many turns one user may have running at once: a slot per turn, 429 when all are held.
Part of the turn, so every entry point (HTTP, CLI, a worker) meets it."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from uuid import UUID

from redis.exceptions import RedisError

from employeevirtual.errors import RateLimited
from employeevirtual.security.concurrency import ConcurrencyLimiter, NoSlotAvailable

__all__ = ["TurnSlots"]

log = logging.getLogger(__name__)


class TurnSlots:
    def __init__(self, concurrency: ConcurrencyLimiter, *, per_user: int) -> None:
        self.concurrency = concurrency
        self.per_user = per_user

    @asynccontextmanager
    async def hold(self, user_id: UUID) -> AsyncIterator[None]:
        """Hold one of the user's slots for the block; RateLimited (429) when all are in use.
        Without Redis the limit is skipped (fail open, like the rate limits)."""
        limit = self.per_user
        async with AsyncExitStack() as stack:
            try:
                await stack.enter_async_context(
                    self.concurrency.hold(f"turns:{user_id}", limit=limit)
                )
            except NoSlotAvailable:
                raise RateLimited(
                    f"at most {limit} chat turns at once per user; wait for one to finish",
                    headers={"Retry-After": "1"},
                ) from None
            except RedisError as exc:
                log.warning("concurrency limit skipped, Redis failed: %s", type(exc).__name__)
            yield
