"""Batched acknowledgements that a turn (or a conversation summary) reached MongoDB.

A turn's MongoDB writes happen after its SQL commit. Rather than a second SQL transaction per
turn, successful writes are acknowledged here and flushed in one transaction every interval;
``conversations.synced_seq`` below ``message_count`` is what the relay replays. A background
summary's copy (``context.conversation_state``) is acknowledged the same way
(``conversation_summaries.synced_at``; the relay carries a version left unsynced past its grace).
A lost ack (crash before a flush, a failed flush) only costs an idempotent replay.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncEngine

from employeevirtual.stores.sql.conversations import ConversationRepository
from employeevirtual.stores.sql.engine import write_transaction
from employeevirtual.stores.sql.summaries import SummaryRepository
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
        self._summaries: dict[UUID, int] = {}  # the newest summary version copied, by conversation
        self._background = Background("sync-acks")

    def ack(self, conversation_id: UUID, first_seq: int, last_seq: int) -> None:
        self._pending.setdefault(conversation_id, []).append((first_seq, last_seq))

    def ack_summary(self, conversation_id: UUID, version: int) -> None:
        """The conversation's summary ``version`` reached MongoDB (older ones go with it)."""
        if version > self._summaries.get(conversation_id, 0):
            self._summaries[conversation_id] = version

    async def flush(self) -> None:
        pending, self._pending = self._pending, {}
        summaries, self._summaries = self._summaries, {}
        if not pending and not summaries:
            return
        acks = [
            (conversation_id, first, last)
            for conversation_id, ranges in pending.items()
            for first, last in merge_ranges(ranges)
        ]
        try:
            async with write_transaction(self.engine) as conn:
                await ConversationRepository(conn).ack_synced(acks)
                await SummaryRepository(conn).mark_summaries_synced(
                    list(summaries.items()), datetime.now(UTC)
                )
        except Exception:
            log.warning(
                "could not record %d sync acks; the relay will replay them",
                len(acks) + len(summaries),
            )

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
