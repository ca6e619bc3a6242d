"""Batched acknowledgements that a turn reached MongoDB.

A turn's MongoDB writes happen after its SQL commit. Rather than a second SQL transaction per
turn, successful writes are acknowledged here and flushed in one transaction every interval;
``conversations.synced_seq`` below ``message_count`` is what the relay replays. A lost ack (crash
before a flush) only costs an idempotent replay.
"""

from __future__ import annotations

import asyncio
import logging
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncEngine

from employeevirtual.stores.sql.conversations import ConversationRepository
from employeevirtual.stores.sql.engine import write_transaction
from employeevirtual.tasks import Background, raise_if_cancelling

__all__ = ["SyncAcks", "merge_ranges"]

log = logging.getLogger(__name__)


def merge_ranges(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Contiguous (first, last) seq ranges merged, in order."""
    merged: list[tuple[int, int]] = []
    for first, last in sorted(ranges):
        if merged and first == merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], last)
        else:
            merged.append((first, last))
    return merged


class SyncAcks:
    def __init__(self, engine: AsyncEngine, *, interval: float = 0.5) -> None:
        self.engine = engine
        self.interval = interval
        self._pending: dict[UUID, list[tuple[int, int]]] = {}
        self._background = Background("sync-acks")

    def ack(self, conversation_id: UUID, first_seq: int, last_seq: int) -> None:
        self._pending.setdefault(conversation_id, []).append((first_seq, last_seq))

    async def flush(self) -> None:
        pending, self._pending = self._pending, {}
        if not pending:
            return
        acks = [
            (conversation_id, first, last)
            for conversation_id, ranges in pending.items()
            for first, last in merge_ranges(ranges)
        ]
        try:
            async with write_transaction(self.engine) as conn:
                await ConversationRepository(conn).ack_synced(acks)
        except Exception:
            log.warning("could not record %d sync acks; the relay will replay them", len(acks))

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self.flush()
            raise_if_cancelling()

    def start(self) -> None:
        self._background.start(self._loop)

    async def stop(self) -> None:
        await self._background.stop()
        await self.flush()
