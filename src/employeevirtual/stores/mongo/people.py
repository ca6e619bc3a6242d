"""A person's documents in MongoDB: read them out (export), remove them (erasure), expire them
(retention). Every operation is idempotent: a resumed job repeats it safely."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import OperationFailure

__all__ = ["delete_before", "delete_for", "documents_of", "ensure_ttl"]

Document = dict[str, Any]
TTL_INDEX = "ev_retention_ttl"


async def documents_of(
    db: AsyncDatabase[Document], collection: str, field: str, value: str, *, batch: int = 500
) -> AsyncIterator[Document]:
    """Every document whose ``field`` is ``value``, oldest first, streamed in batches."""
    cursor = db[collection].find({field: value}).sort("_id", ASCENDING).batch_size(batch)
    async for doc in cursor:
        yield doc


async def delete_for(db: AsyncDatabase[Document], collection: str, field: str, value: str) -> int:
    result = await db[collection].delete_many({field: value})
    return int(result.deleted_count)


async def delete_before(
    db: AsyncDatabase[Document], collection: str, *, field: str, cutoff: datetime
) -> int:
    result = await db[collection].delete_many({field: {"$lt": cutoff}})
    return int(result.deleted_count)


async def ensure_ttl(
    db: AsyncDatabase[Document], collection: str, *, field: str, seconds: int
) -> bool:
    """A TTL index expiring documents ``seconds`` after ``field`` (0: none, keep forever).
    Replaced when the period changes. False when the server has no TTL indexes."""
    coll = db[collection]
    try:
        existing = {ix["name"]: ix async for ix in await coll.list_indexes()}
        current = existing.get(TTL_INDEX)
        if current is not None and (seconds <= 0 or current.get("expireAfterSeconds") != seconds):
            await coll.drop_index(TTL_INDEX)
            current = None
        if seconds > 0 and current is None:
            await coll.create_indexes(
                [IndexModel([(field, ASCENDING)], name=TTL_INDEX, expireAfterSeconds=seconds)]
            )
    except OperationFailure:
        return False
    return True
