"""How ``employeevirtual serve`` runs uvicorn: every limit explicit, none of uvicorn's defaults
left to chance (it trusts ``X-Forwarded-For`` from 127.0.0.1 and reads ``FORWARDED_ALLOW_IPS``
from the environment unless told otherwise; its httptools parser has no header size limit; it
has no deadline for a request's headers, so a slow client holds a connection forever)."""

from __future__ import annotations

import asyncio
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from employeevirtual.settings import Settings

__all__ = ["guarded_protocol", "server_config"]


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


def server_config(app: Any, settings: Settings, *, host: str, port: int) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=settings.log_level.lower(),
        # the app applies X-Forwarded-* itself, for EV_FORWARDED_ALLOW_IPS only (api/proxy.py);
        # the list is still handed over so uvicorn never falls back to its own default
        proxy_headers=False,
        forwarded_allow_ips=",".join(settings.forwarded_allow_ips),
        server_header=False,
        # our access log (api/middleware.py) leaves query strings out; uvicorn's writes them
        access_log=False,
        http=guarded_protocol(settings),
        timeout_keep_alive=settings.keep_alive_seconds,
        limit_concurrency=settings.max_connections,
        h11_max_incomplete_event_size=settings.max_header_bytes,
    )
