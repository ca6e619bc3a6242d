"""Service errors to HTTP: each one status and a message that says what to fix."""

from __future__ import annotations

import logging
import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from employeevirtual.api.middleware import internal_error_body
from employeevirtual.api.openai_schemas import openai_error
from employeevirtual.api.request_id import current_request_id
from employeevirtual.errors import ServiceError, Unauthorized

__all__ = ["install_error_handlers"]

log = logging.getLogger(__name__)


def _openai_door(request: Request) -> bool:
    """The OpenAI-compatible routes answer errors in OpenAI's shape, for its SDKs."""
    return request.url.path.startswith("/v1/")


async def _service_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ServiceError)
    headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, Unauthorized) else exc.headers
    if _openai_door(request):
        extra = exc.extra
        return openai_error(
            exc.status_code,
            exc.message,
            code=extra.get("code"),
            param=extra.get("param"),
            headers=headers,
        )
    return JSONResponse(
        {"detail": exc.message, **exc.extra}, status_code=exc.status_code, headers=headers
    )


def _rolled_back_by_a_concurrent_write(exc: Exception) -> bool:
    """SQLSTATE class 40: the database chose this transaction as a deadlock's victim or failed
    its serialization (PostgreSQL's asyncpg and psycopg give ``sqlstate``, pyodbc its first
    argument). Nothing of it was written, and the same request can succeed at once."""
    orig = getattr(exc, "orig", None)
    state = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    if state is None and orig is not None and orig.args and isinstance(orig.args[0], str):
        state = orig.args[0]
    return isinstance(state, str) and len(state) == 5 and state.startswith("40")


async def _database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    if _rolled_back_by_a_concurrent_write(exc):
        return await _conflicting_write(request, exc)
    log.error("relational store unavailable: %s", type(exc).__name__)
    return JSONResponse(
        {"detail": "the database is unavailable; nothing was written, retry shortly"},
        status_code=503,
        headers={"Retry-After": "5"},
    )


async def _conflicting_write(_request: Request, exc: Exception) -> JSONResponse:
    """A constraint refused the write (a race the service did not foresee), or the database
    rolled the transaction back for a concurrent one (a deadlock): nothing was written; this is
    not an outage."""
    log.warning("write refused (a constraint, or a concurrent write): %s", type(exc).__name__)
    return JSONResponse(
        {"detail": "the request conflicts with data written meanwhile; nothing was written, retry"},
        status_code=409,
    )


def _json_safe(value: Any) -> Any:
    """``value`` with what JSON cannot carry made visible instead of fatal: a lone surrogate
    becomes its escape (``\\ud800``), NaN and the infinities their names."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return value.encode("utf-8", "backslashreplace").decode("utf-8")
        return value
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {_json_safe(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's 422, for any input: the echoed values are made JSON-safe first (its own handler
    answers 500 for a lone surrogate or NaN it cannot encode). OpenAI's 400 on its door."""
    assert isinstance(exc, RequestValidationError)
    errors = _json_safe(jsonable_encoder(exc.errors()))
    if _openai_door(request):
        first = errors[0] if errors else {}
        where = ".".join(str(p) for p in first.get("loc", ())[1:]) or None
        message = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ())[1:]) or 'body'}: {e.get('msg')}"
            for e in errors
        )
        return openai_error(400, message or "invalid request", param=where)
    return JSONResponse({"detail": errors}, status_code=422)


async def _unhandled(_request: Request, exc: Exception) -> JSONResponse:
    """Starlette's last-resort handler: a JSON problem with the request id (the exception is
    logged once, by ``CrashGuard``, which it reaches next)."""
    return JSONResponse(internal_error_body(current_request_id()), status_code=500)


async def _http_error(request: Request, exc: Exception) -> Response:
    """FastAPI's own HTTP errors (an unparsable body, 404/405 routing): as FastAPI answers
    them, but in OpenAI's shape on its door."""
    assert isinstance(exc, StarletteHTTPException)
    if _openai_door(request):
        return openai_error(exc.status_code, str(exc.detail), headers=dict(exc.headers or {}))
    return await http_exception_handler(request, exc)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(Exception, _unhandled)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(ServiceError, _service_error)
    app.add_exception_handler(OperationalError, _database_unavailable)
    app.add_exception_handler(PoolTimeout, _database_unavailable)
    app.add_exception_handler(IntegrityError, _conflicting_write)
    app.add_exception_handler(DBAPIError, _database_unavailable)
