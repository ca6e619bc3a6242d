"""Pure ASGI middleware: request body size, a global rate limit per client address, and
security headers. Pure ASGI (not ``BaseHTTPMiddleware``) so nothing buffers the body or
the response and a rejection costs no routing, parsing or database work."""

from __future__ import annotations

import contextlib
import functools
import ipaddress
import json
import logging
import re
import time
from typing import Any

from redis.exceptions import RedisError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from employeevirtual.api.asgi import HttpMiddleware
from employeevirtual.api.global_limit import PendingGlobalHit, RecentlyRefused, refusal
from employeevirtual.api.openai_schemas import error_body
from employeevirtual.security.ratelimit import Hit

__all__ = [
    "AccessLog",
    "AfterResponse",
    "BodySizeLimit",
    "CrashGuard",
    "GlobalRateLimit",
    "SecurityHeaders",
    "client_key",
    "internal_error_body",
]

log = logging.getLogger(__name__)
access_log = logging.getLogger("employeevirtual.access")


async def _send_json(
    send: Send, status: int, body: dict[str, Any], headers: dict[str, str], path: str = ""
) -> None:
    if path.startswith("/v1/") and isinstance(body.get("detail"), str):
        body = error_body(status, body["detail"])  # the OpenAI door's clients parse this shape
    payload = json.dumps(body).encode()
    raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    raw += [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": payload})


class _BodyTooLarge(Exception):
    pass


class BodySizeLimit(HttpMiddleware):
    """413 for a body over ``max_bytes``: at once from ``Content-Length``, otherwise (chunked
    bodies) as soon as the running total passes the limit, without reading the rest."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_bytes: int,
        uploads: tuple[re.Pattern[str], int] | None = None,
    ) -> None:
        """``uploads``: POSTs to paths matching the pattern may send up to its own limit."""
        super().__init__(app)
        self.max_bytes = max_bytes
        self.uploads = uploads

    def _limit(self, scope: Scope) -> int:
        if (
            self.uploads is not None
            and scope.get("method") == "POST"
            and self.uploads[0].match(scope.get("path", ""))
        ):
            return self.uploads[1]
        return self.max_bytes

    @staticmethod
    def _error(limit: int) -> dict[str, Any]:
        return {"detail": f"the request body is larger than {limit} bytes (the limit)"}

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        max_bytes = self._limit(scope)
        for name, value in scope["headers"]:
            if name == b"content-length":
                # at most 18 digits go to int(): Python refuses over 4,300, a 500 otherwise
                if value.isdigit() and (len(value) > 18 or int(value) > max_bytes):
                    await _send_json(
                        send, 413, self._error(max_bytes), {"Connection": "close"}, scope["path"]
                    )
                    return
                break
        received = 0
        exceeded = False
        started = False

        async def limited_receive() -> Message:
            nonlocal received, exceeded
            if exceeded:
                raise _BodyTooLarge
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > max_bytes:
                    exceeded = True
                    raise _BodyTooLarge
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if exceeded:  # the app turned our exception into its own error: answer 413 instead
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except _BodyTooLarge:
            pass
        except Exception:
            if not exceeded:
                raise
        if exceeded and not started:
            await _send_json(
                send, 413, self._error(max_bytes), {"Connection": "close"}, scope["path"]
            )


def client_key(scope: Scope) -> str:
    """The client's address; IPv6 grouped by /64 (one client usually holds a whole /64)."""
    client = scope.get("client")
    # at most 64 characters reach the cache: behind a trusted proxy the host is a header's text
    return _host_key((client[0] if client else "unknown")[:64])


@functools.lru_cache(maxsize=4096)  # a client sends many requests: parse its address once
def _host_key(host: str) -> str:
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        return f"host:{host[:64]}"
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is not None:
            return f"ip:{addr.ipv4_mapped}"
        return f"ip:{ipaddress.IPv6Network((addr, 64), strict=False)}"
    return f"ip:{addr}"


class GlobalRateLimit(HttpMiddleware):
    """At most ``limit`` requests per ``window_seconds`` per client address, for every path
    but the health probes. The counter is the runtime's limiter (Redis when configured, so
    all processes share it). A Redis failure lets requests through (logged): this is a
    flood guard, and failing closed would turn a cache outage into a full outage.

    On the ``taken_by_route`` routes (method, path) the route's chat rate limit takes the hit
    with its own, in one round trip (``api.global_limit``); the hit is taken here only if the
    request answers without it, before the answer's first byte, or if the address was refused
    lately (then before routing, as on every path)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        limit: int,
        window_seconds: int,
        taken_by_route: frozenset[tuple[str, str]] = frozenset(),
    ) -> None:
        super().__init__(app)
        self.limit = limit
        self.window_seconds = window_seconds
        self.taken_by_route = taken_by_route
        self.refused = RecentlyRefused()

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        runtime = getattr(scope["app"].state, "runtime", None)
        if path.startswith("/health/") or runtime is None:
            await self.app(scope, receive, send)
            return
        hit = Hit("global:" + client_key(scope), self.limit, self.window_seconds)
        if (scope["method"], path) in self.taken_by_route and hit.key not in self.refused:
            await self._left_to_the_route(PendingGlobalHit(hit), runtime, scope, receive, send)
        elif not await self._refused(hit, runtime, path, send):
            await self.app(scope, receive, send)

    async def _refused(self, hit: Hit, runtime: Any, path: str, send: Send) -> bool:
        """Take the hit; True when it was refused (and the 429 sent)."""
        try:
            (decision,) = await runtime.limiter.hit_in_order([hit])
        except RedisError as exc:
            log.warning("global rate limit skipped, Redis failed: %s", type(exc).__name__)
            return False
        if decision.allowed:
            return False
        self.refused.note(hit.key, decision)
        await _send_json(send, 429, {"detail": refusal(decision)}, decision.headers(), path)
        return True

    async def _left_to_the_route(
        self, pending: PendingGlobalHit, runtime: Any, scope: Scope, receive: Receive, send: Send
    ) -> None:
        pending.put_on(scope)
        refused = False

        async def send_unless_refused(message: Message) -> None:
            nonlocal refused
            if message["type"] == "http.response.start":
                if not pending.taken:  # the route did not take it: take it before answering
                    pending.taken = True
                    refused = await self._refused(pending.hit, runtime, scope["path"], send)
                elif pending.decision is not None:  # the route's answer (a refusal: its 429)
                    self.refused.note(pending.hit.key, pending.decision)
            if not refused:
                await send(message)

        try:
            await self.app(scope, receive, send_unless_refused)
        finally:
            if not pending.taken:  # no answer (an exception, a client gone): still counted
                pending.taken = True
                with contextlib.suppress(RedisError):
                    await runtime.limiter.hit_in_order([pending.hit])


class SecurityHeaders(HttpMiddleware):
    """Headers every response carries; ``Cache-Control: no-store`` on the API's answers
    (they hold private data), HSTS only when configured (it must only be sent over HTTPS)."""

    _DOCS = ("/docs", "/redoc", "/openapi.json")
    _CONSOLE_PAGES = frozenset({"/", "/index.html"})  # the web console's page and its assets

    def __init__(self, app: ASGIApp, *, hsts_seconds: int = 0, console_csp: str = "") -> None:
        super().__init__(app)
        self.console_csp = console_csp.encode()
        self.hsts = f"max-age={hsts_seconds}; includeSubDomains" if hsts_seconds else None

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        if path.startswith(self._DOCS):
            # the docs page loads Swagger UI's script and styles
            csp = b"frame-ancestors 'none'"
        elif self.console_csp and (path in self._CONSOLE_PAGES or path.startswith("/assets/")):
            csp = self.console_csp  # the web console's own files
        else:
            csp = b"default-src 'none'; frame-ancestors 'none'"  # the API serves only data
        extra: list[tuple[bytes, bytes]] = [
            (b"x-content-type-options", b"nosniff"),
            (b"x-frame-options", b"DENY"),
            (b"referrer-policy", b"no-referrer"),
            (b"content-security-policy", csp),
        ]
        if path.startswith("/api/"):
            extra.append((b"cache-control", b"no-store"))
        if self.hsts:
            extra.append((b"strict-transport-security", self.hsts.encode()))

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers += [(k, v) for k, v in extra if k not in present]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def internal_error_body(request_id: str | None) -> dict[str, Any]:
    return {
        "detail": "internal error: the request failed on our side; quote the request id if you "
        "report it",
        "request_id": request_id,
    }


class CrashGuard(HttpMiddleware):
    """The last line: an exception nothing else handled is one ERROR log line (the traceback at
    DEBUG), and the client gets a JSON problem (500, with the request id) when no answer started.
    The exception stops here, so the server neither logs it again nor drops the connection."""

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            rid = scope.get("state", {}).get("request_id")
            log.error(
                "unhandled %s on %s %s (request %s)",
                type(exc).__name__,
                scope.get("method"),
                scope.get("path"),
                rid,
            )
            log.debug("traceback of request %s", rid, exc_info=exc)
            if not started:
                await _send_json(send, 500, internal_error_body(rid), {})


class AfterResponse(HttpMiddleware):
    """Pure ASGI: ``done(scope, status, seconds)`` once every HTTP request has ended, with the
    status it answered (0 when no answer started) and how long it took."""

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        start = time.perf_counter()
        status = 0

        async def tracking_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        finally:
            self.done(scope, status, time.perf_counter() - start)

    def done(self, scope: Scope, status: int, seconds: float) -> None:
        raise NotImplementedError


class AccessLog(AfterResponse):
    """One INFO line per request: client, method, path (never the query string, which may hold
    a key, a token or message text), status, duration. Replaces uvicorn's access log."""

    def done(self, scope: Scope, status: int, seconds: float) -> None:
        client = scope.get("client")
        access_log.info(
            '%s "%s %s" %s %.1f ms',
            client[0] if client else "-",
            scope.get("method"),
            scope.get("path"),
            status or "-",
            seconds * 1000,
        )
