"""The id of the request being handled, for any layer (error bodies, log lines). Set by the
API's outermost middleware (api/request_id.py); background tasks a request starts inherit it."""

from __future__ import annotations

from contextvars import ContextVar

__all__ = ["current_request_id", "current_session_data", "request_id_var", "session_data_var"]

request_id_var: ContextVar[str | None] = ContextVar("ev_request_id", default=None)
# where the request came from, as a conversation records it (``context.session_data``):
# {"channel": "api" | "stream" | "openai", "client": "<the client's product token>"}
session_data_var: ContextVar[dict[str, str] | None] = ContextVar("ev_session_data", default=None)


def current_request_id() -> str | None:
    """The id of the request being handled, or None outside a request."""
    return request_id_var.get()


def current_session_data() -> dict[str, str] | None:
    """The channel and client of the request being handled (set by ``api/session_data.py``)."""
    return session_data_var.get()
