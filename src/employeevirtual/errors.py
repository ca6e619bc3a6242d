"""Errors the services raise; the API maps each to one HTTP status with its message."""

from __future__ import annotations

from typing import Any

__all__ = [
    "Conflict",
    "Forbidden",
    "InvalidInput",
    "NotFound",
    "RateLimited",
    "ServiceError",
    "Unauthorized",
    "Unavailable",
]


class ServiceError(Exception):
    status_code = 400

    def __init__(
        self, message: str, *, headers: dict[str, str] | None = None, **extra: Any
    ) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers
        self.extra = extra


class InvalidInput(ServiceError):
    status_code = 422


class Unauthorized(ServiceError):
    status_code = 401


class Forbidden(ServiceError):
    status_code = 403


class NotFound(ServiceError):
    status_code = 404


class Conflict(ServiceError):
    status_code = 409


class Unavailable(ServiceError):
    status_code = 503


class RateLimited(ServiceError):
    """429; ``headers`` carry ``Retry-After`` and the RateLimit fields."""

    status_code = 429

    def __init__(self, message: str, *, headers: dict[str, str], **extra: Any) -> None:
        super().__init__(message, **extra)
        self.headers = headers
