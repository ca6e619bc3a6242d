"""Service errors to HTTP: each one status and a message that says what to fix."""

from __future__ import annotations

import logging
import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from employeevirtual.api.middleware import internal_error_body
from employeevirtual.api.request_id import current_request_id
from employeevirtual.errors import ServiceError, Unauthorized

__all__ = ["install_error_handlers"]

log = logging.getLogger(__name__)


async def _service_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ServiceError)
    headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, Unauthorized) else exc.headers
    return JSONResponse(
        {"detail": exc.message, **exc.extra}, status_code=exc.status_code, headers=headers
    )


async def _database_unavailable(_request: Request, exc: Exception) -> JSONResponse:
    log.error("relational store unavailable: %s", type(exc).__name__)
    return JSONResponse(
        {"detail": "the database is unavailable; nothing was written, retry shortly"},
        status_code=503,
        headers={"Retry-After": "5"},
    )


async def _conflicting_write(_request: Request, exc: Exception) -> JSONResponse:
    """A constraint refused the write (a race the service did not foresee): the transaction was
    rolled back, so nothing was written; this is not an outage."""
    log.warning("constraint violation: %s", type(exc).__name__)
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


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's 422, for any input: the echoed values are made JSON-safe first (its own handler
    answers 500 for a lone surrogate or NaN it cannot encode)."""
    assert isinstance(exc, RequestValidationError)
    errors = _json_safe(jsonable_encoder(exc.errors()))
    return JSONResponse({"detail": errors}, status_code=422)


async def _unhandled(_request: Request, exc: Exception) -> JSONResponse:
    """Starlette's last-resort handler: a JSON problem with the request id (the exception is
    logged once, by ``CrashGuard``, which it reaches next)."""
    return JSONResponse(internal_error_body(current_request_id()), status_code=500)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(Exception, _unhandled)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(ServiceError, _service_error)
    app.add_exception_handler(OperationalError, _database_unavailable)
    app.add_exception_handler(PoolTimeout, _database_unavailable)
    app.add_exception_handler(IntegrityError, _conflicting_write)
    app.add_exception_handler(DBAPIError, _database_unavailable)
    app.add_exception_handler(OSError, _database_unavailable)
