"""The id of the request being handled, for any layer (error bodies, log lines). Set by the
API's outermost middleware (api/request_id.py); background tasks a request starts inherit it."""

from __future__ import annotations

from contextvars import ContextVar

__all__ = ["current_request_id", "request_id_var"]

request_id_var: ContextVar[str | None] = ContextVar("ev_request_id", default=None)


def current_request_id() -> str | None:
    """The id of the request being handled, or None outside a request."""
    return request_id_var.get()
