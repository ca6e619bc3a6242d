"""How ``employeevirtual serve`` runs uvicorn: every limit explicit, none of uvicorn's defaults
left to chance (it trusts ``X-Forwarded-For`` from 127.0.0.1 and reads ``FORWARDED_ALLOW_IPS``
from the environment unless told otherwise; its httptools parser has no header size limit; it
has no deadline for a request's headers, so a slow client holds a connection forever)."""

from __future__ import annotations

import asyncio
import functools
import os
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from employeevirtual.settings import Settings

__all__ = [
    "EnvGuardedHttpTools",
    "default_workers",
    "guarded_protocol",
    "server_config",
    "server_options",
    "workers_problem",
]


class _HeadersTooLarge(Exception):
    pass


class _GuardedHttpTools(HttpToolsProtocol):
    """uvicorn's httptools protocol with two guards: the request line and headers together stay
    under ``max_header_bytes`` (else 400 and close), and they arrive within
    ``header_timeout`` seconds of the connection opening or the request starting (else the
    connection closes: no slow-loris)."""

    max_header_bytes = 16_384
    header_timeout = 10.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._header_bytes = 0
        self._header_timer: asyncio.TimerHandle | None = None
        self._arm_header_timer()

    def _arm_header_timer(self) -> None:
        if self._header_timer is None:
            self._header_timer = self.loop.call_later(self.header_timeout, self._headers_late)

    def _disarm_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_late(self) -> None:
        self._header_timer = None
        if not self.transport.is_closing():
            self.logger.info("closing a connection that sent no complete headers in time")
            self.transport.close()

    def _count(self, size: int) -> None:
        self._header_bytes += size
        if self._header_bytes > self.max_header_bytes:
            raise _HeadersTooLarge  # httptools turns it into a parser error: 400, close

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._header_bytes = 0
        self._arm_header_timer()

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + 4)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._disarm_header_timer()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_timer()
        super().connection_lost(exc)


def guarded_protocol(settings: Settings) -> type[HttpToolsProtocol]:
    return type(
        "GuardedHttpTools",
        (_GuardedHttpTools,),
        {
            "max_header_bytes": settings.max_header_bytes,
            "header_timeout": settings.header_timeout_seconds,
        },
    )


@functools.cache
def _env_limits() -> tuple[int, float]:
    settings = Settings()
    return settings.max_header_bytes, settings.header_timeout_seconds


class EnvGuardedHttpTools(_GuardedHttpTools):
    """The guarded protocol for worker processes, which uvicorn starts with ``spawn``: a class
    importable by name, whose limits come from the worker's own settings (``EV_*``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.max_header_bytes, self.header_timeout = _env_limits()


def default_workers(settings: Settings) -> int:
    """One per core when the stores are shared services (PostgreSQL or SQL Server, MongoDB by
    URL, Redis); one otherwise, since the embedded stores serve one process."""
    if workers_problem(settings, 2) is None:
        return max(1, os.cpu_count() or 1)
    return 1


def workers_problem(settings: Settings, workers: int) -> str | None:
    """Why ``workers`` processes cannot share these settings' stores, or None."""
    if workers <= 1:
        return None
    if settings.database_url is None or settings.sql_url.startswith("sqlite"):
        return (
            "several workers need a database server (EV_DATABASE_URL for PostgreSQL or SQL "
            "Server): SQLite admits one writer, and its writers in separate processes would "
            "queue on its busy timeout instead of in order; run one worker on SQLite"
        )
    if settings.mongodb_url is None:
        return (
            "several workers need EV_MONGODB_URL: the embedded SecantusDB and the data "
            "directory belong to one server process"
        )
    if settings.redis_url is None:
        return (
            "several workers share the rate limits, the concurrent-turn slots and live turns' "
            "event streams (resume, cancel) through Redis: set EV_REDIS_URL, or run one worker"
        )
    return None


def server_options(settings: Settings) -> dict[str, Any]:
    """uvicorn's settings, the same for one process and for workers (minus the protocol)."""
    return {
        "log_level": settings.log_level.lower(),
        # the app applies X-Forwarded-* itself, for EV_FORWARDED_ALLOW_IPS only (api/proxy.py);
        # the list is still handed over so uvicorn never falls back to its own default
        "proxy_headers": False,
        "forwarded_allow_ips": ",".join(settings.forwarded_allow_ips),
        "server_header": False,
        # our access log (api/middleware.py) leaves query strings out; uvicorn's writes them
        "access_log": False,
        "timeout_keep_alive": settings.keep_alive_seconds,
        "limit_concurrency": settings.max_connections,
        "h11_max_incomplete_event_size": settings.max_header_bytes,
    }


def server_config(app: Any, settings: Settings, *, host: str, port: int) -> uvicorn.Config:
    return uvicorn.Config(
        app, host=host, port=port, http=guarded_protocol(settings), **server_options(settings)
    )
