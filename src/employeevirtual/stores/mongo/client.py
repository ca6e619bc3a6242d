"""The MongoDB client, configured one way for the server and the command-line tools."""

from __future__ import annotations

from typing import Any

from pymongo import AsyncMongoClient

__all__ = ["connect"]


def connect(url: str, *, timeout_ms: int) -> AsyncMongoClient[dict[str, Any]]:
    """Aware datetimes; no driver retries (every write of ours is idempotent and replayed by
    the relay instead; Cosmos DB runs with retrywrites=false); short timeouts, so a MongoDB
    outage degrades a turn instead of stalling it."""
    return AsyncMongoClient(
        url,
        tz_aware=True,
        retryWrites=False,
        serverSelectionTimeoutMS=timeout_ms,
        connectTimeoutMS=timeout_ms,
        socketTimeoutMS=timeout_ms * 5,
    )
