"""Service errors to HTTP: each one status and a message that says what to fix."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

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


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ServiceError, _service_error)
    app.add_exception_handler(OperationalError, _database_unavailable)
    app.add_exception_handler(PoolTimeout, _database_unavailable)
    app.add_exception_handler(IntegrityError, _conflicting_write)
    app.add_exception_handler(DBAPIError, _database_unavailable)
    app.add_exception_handler(OSError, _database_unavailable)
