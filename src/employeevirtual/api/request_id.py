"""Every request gets an id: echoed as ``X-Request-ID``, quoted in error bodies (500 problems,
provider failures) and in every log line written while the request runs.

A client's own ``X-Request-ID`` is kept only when the request arrives from a trusted proxy
(``EV_FORWARDED_ALLOW_IPS``), so an outside caller cannot plant ids in our logs; otherwise a
fresh one is generated. Pure ASGI, the outermost layer: it sees the real peer address before
the forwarded headers are applied."""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Callable
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from employeevirtual.api.asgi import HttpMiddleware
from employeevirtual.api.proxy import TrustedProxies
from employeevirtual.request_context import current_request_id, request_id_var

__all__ = [
    "HEADER",
    "RequestId",
    "current_request_id",
    "install_log_record_factory",
    "new_request_id",
]

HEADER = "X-Request-ID"
_HEADER_KEY = HEADER.lower().encode("latin-1")
# what a proxy may hand us: short, printable, no spaces or separators a log parser would trip on
_ACCEPTED = re.compile(rb"[A-Za-z0-9._:@+=/-]{8,128}")

_request_id = request_id_var


def new_request_id() -> str:
    """32 random hex digits (the shape of ``uuid4().hex``, without building a UUID)."""
    return secrets.token_hex(16)


class RequestId(HttpMiddleware):
    def __init__(self, app: ASGIApp, *, trusted: TrustedProxies) -> None:
        super().__init__(app)
        self.trusted = trusted

    def _choose(self, scope: Scope) -> str:
        client = scope.get("client")
        if client and self.trusted.trusts(client[0]):
            for name, value in scope["headers"]:
                if name == _HEADER_KEY:
                    if _ACCEPTED.fullmatch(value):
                        return str(value.decode("ascii"))
                    break
        return new_request_id()

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        rid = self._choose(scope)
        scope.setdefault("state", {})["request_id"] = rid
        token = _request_id.set(rid)
        raw = rid.encode("ascii")

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    (k, v) for k, v in message.get("headers", []) if k.lower() != _HEADER_KEY
                ]
                headers.append((_HEADER_KEY, raw))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            _request_id.reset(token)


_installed = False


def install_log_record_factory() -> None:
    """Give every log record a ``request_id`` attribute (``-`` outside a request), so a format
    may use ``%(request_id)s`` for every logger, ours and the libraries'. Idempotent."""
    global _installed
    if _installed:
        return
    previous: Callable[..., logging.LogRecord] = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        record.request_id = _request_id.get() or "-"
        return record

    logging.setLogRecordFactory(factory)
    _installed = True
