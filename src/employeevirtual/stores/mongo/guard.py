"""The ``DocumentStore``'s I/O behind its circuit breaker, and timed for the metrics."""

from __future__ import annotations

import functools
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

from pymongo.errors import ConnectionFailure, NetworkTimeout, WaitQueueTimeoutError

from employeevirtual.stores.mongo.breaker import CircuitBreaker, MongoUnavailable

__all__ = ["guarded_io"]

T = TypeVar("T")


class _Guarded(Protocol):
    breaker: CircuitBreaker | None
    observe: Callable[[str, float], None] | None


def guarded_io(*, spared: tuple[str, ...]) -> Callable[[type[T]], type[T]]:
    """A class decorator: every public coroutine method of the class, those added later in
    its body included, goes through ``_guarded``; ``spared`` do not (they are how a
    closed-for-now store is found healthy again)."""

    def decorate(cls: type[T]) -> type[T]:
        for name, method in list(vars(cls).items()):
            if (
                inspect.iscoroutinefunction(method)
                and not name.startswith("_")
                and name not in spared
            ):
                setattr(cls, name, _guarded(method))
        return cls

    return decorate


def _guarded(method: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """Fail at once while the store's breaker is open; a call that cannot reach the server
    opens it. Timed for the metrics when ``observe`` is set (a PyMongo command listener costs
    the driver an event object per command: about 0.1 ms of CPU each, measured)."""
    name = method.__name__

    @functools.wraps(method)
    async def call(self: _Guarded, *args: Any, **kwargs: Any) -> Any:
        observe = self.observe
        if observe is None:
            return await _breaker_call(self, method, args, kwargs)
        started = time.perf_counter()
        try:
            return await _breaker_call(self, method, args, kwargs)
        finally:
            observe(name, time.perf_counter() - started)

    return call


async def _breaker_call(
    store: _Guarded,
    method: Callable[..., Awaitable[Any]],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> Any:
    breaker = store.breaker
    if breaker is None:
        return await method(store, *args, **kwargs)
    breaker.check()
    try:
        return await method(store, *args, **kwargs)
    except (MongoUnavailable, NetworkTimeout, WaitQueueTimeoutError):
        raise  # a slow operation or a busy pool is not an unreachable server
    except ConnectionFailure as exc:
        breaker.failure(exc)
        raise
