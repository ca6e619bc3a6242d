"""The MongoDB client, configured one way for the server and the command-line tools."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pymongo import AsyncMongoClient

__all__ = ["connect"]


def connect(
    url: str, *, timeout_ms: int, event_listeners: Sequence[Any] = ()
) -> AsyncMongoClient[dict[str, Any]]:
    """Aware datetimes; no driver retries (every write of ours is idempotent and replayed by
    the relay instead; Cosmos DB runs with retrywrites=false); journaled writes (``synced_seq``
    records what MongoDB holds, so an acknowledged write must survive a crash of MongoDB: w:1
    without j loses its last ~100 ms, as SecantusDB showed under SIGKILL); short timeouts and a
    1 s heartbeat, so an outage degrades a turn instead of stalling it and a restarted server
    is found again quickly."""
    return AsyncMongoClient(
        url,
        tz_aware=True,
        retryWrites=False,
        journal=True,
        heartbeatFrequencyMS=1000,
        serverSelectionTimeoutMS=timeout_ms,
        connectTimeoutMS=timeout_ms,
        socketTimeoutMS=timeout_ms * 5,
        event_listeners=list(event_listeners),
    )
