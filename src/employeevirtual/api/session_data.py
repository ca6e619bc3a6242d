"""What a conversation records about where it came from (``context.session_data``, issue 18):
the channel (the chat API, its event stream, or the OpenAI-compatible door) and the client
(the ``X-Client`` header a caller may send, else the first product token of its
``User-Agent``, e.g. ``OpenAI/Python``). Never a secret: no header values beyond those, no
address, no credential."""

from __future__ import annotations

import re

from starlette.types import Receive, Scope, Send

from employeevirtual.api.asgi import HttpMiddleware
from employeevirtual.request_context import session_data_var

__all__ = ["SessionData", "session_data"]

_TOKEN = re.compile(rb"[A-Za-z0-9][A-Za-z0-9._+/-]{0,63}")


def session_data(scope: Scope) -> dict[str, str]:
    headers = dict(scope.get("headers") or [])
    path = str(scope.get("path", ""))
    if path.startswith("/v1/"):
        channel = "openai"
    elif b"text/event-stream" in headers.get(b"accept", b""):
        channel = "stream"
    else:
        channel = "api"
    data = {"channel": channel}
    for name in (b"x-client", b"user-agent"):
        match = _TOKEN.match(headers.get(name, b"").strip())
        if match:
            data["client"] = match.group(0).decode("ascii")
            break
    return data


class SessionData(HttpMiddleware):
    """Pure ASGI: the request's session data in a context variable for the turn to read."""

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        token = session_data_var.set(session_data(scope))
        try:
            await self.app(scope, receive, send)
        finally:
            session_data_var.reset(token)
