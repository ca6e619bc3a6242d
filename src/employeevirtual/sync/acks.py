"""Batched acknowledgements that a turn (or a conversation summary) reached MongoDB, and the
turns' batched analytics.

A turn's MongoDB writes happen after its SQL commit: its messages and its conversation document
at once, and its ``chat_analytics`` documents (its run and the runs it delegated) here. Rather
than a second SQL transaction and a third MongoDB command per turn, successful writes are
acknowledged here with their analytics documents, and every ``interval`` one flush writes the
documents of all of them with one ``insert_many``, then records the acknowledgements in one SQL
transaction. ``conversations.synced_seq`` below ``message_count`` is what the relay replays,
rebuilding the analytics documents from SQL (same ``_id``s: duplicates are skipped). A
background summary's copy (``context.conversation_state``) is acknowledged the same way
(``conversation_summaries.synced_at``; the relay carries a version left unsynced past its grace).

So a turn is acknowledged only once its analytics documents are in MongoDB:

* a crash before a flush loses acknowledgements and documents alike: the relay replays them;
* a failed analytics insert leaves those turns unacknowledged (the relay replays them);
* the documents of a conversation deleted meanwhile, or of an owner deactivated meanwhile (an
  erasure deactivates the account first), are not written, and their turns are left to the
  relay, which writes them again only from what SQL still holds (checked in one SQL read per
  flush, so a buffered document cannot bring back what an erasure or a delete removed);
* a delete or an erasure committed between that read and the insert (by another process) is
  caught by a second read after the insert, which takes back the documents just inserted for
  those conversations (``_take_back_late``): none is left for the reconciler to find;
* that first read also takes back a turn's own MongoDB write (its messages, its conversation
  document: an upsert) that landed after its conversation's delete had deleted its documents:
  the conversations it finds gone from SQL have their documents deleted again, with the
  ``conversation_created`` activity of a first turn, which names its owner
  (``_take_back_gone``). Every turn's write is checked (``ack``, or ``check`` for a write the
  guard refused or that failed), and in the read the flush makes anyway: nothing is added to a
  turn's own path;
* the erasure flushes (``flush``) before it erases the person's MongoDB documents, and a flush
  waits for one already running.

Readers of ``chat_analytics`` (the usage API, the rollups, budgets set mid-month) may see a
turn's run up to one ``interval`` after the turn answered.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncEngine

from employeevirtual.stores.mongo.documents import DocumentStore
from employeevirtual.stores.sql.conversations import ConversationRepository
from employeevirtual.stores.sql.engine import read_connection, write_transaction
from employeevirtual.stores.sql.summaries import SummaryRepository
from employeevirtual.stores.sql.sync import SyncReader
from employeevirtual.tasks import Background, raise_if_cancelling

__all__ = ["SyncAcks", "merge_ranges"]

log = logging.getLogger(__name__)

Document = dict[str, Any]


def merge_ranges(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Contiguous (first, last) seq ranges merged, in order."""
    merged: list[tuple[int, int]] = []
    for first, last in sorted(ranges):
        if merged and first == merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], last)
        else:
            merged.append((first, last))
    return merged


RETRIED = 10_000  # turns whose analytics insert failed, kept for the next flush


@dataclass(frozen=True, slots=True)
class _Written:
    """One write of a turn's messages that MongoDB applied, waiting for the flush."""

    conversation_id: UUID
    first_seq: int
    last_seq: int
    analytics: tuple[Document, ...]
    acknowledged: bool = True  # False: only checked (``check``), never acknowledged
    created: bool = False  # the conversation's first turn (it logged ``conversation_created``)


class SyncAcks:
    def __init__(
        self, engine: AsyncEngine, documents: DocumentStore, *, interval: float = 0.5
    ) -> None:
        self.engine = engine
        self.documents = documents
        self.interval = interval
        self._pending: list[_Written] = []
        self._summaries: dict[UUID, int] = {}  # the newest summary version copied, by conversation
        self._lock = asyncio.Lock()  # one flush at a time: a second waits for the first
        self._background = Background("sync-acks")

    def ack(
        self,
        conversation_id: UUID,
        first_seq: int,
        last_seq: int,
        *,
        analytics: Sequence[Document] = (),
        created: bool = False,
    ) -> None:
        """MongoDB holds the messages ``first_seq``..``last_seq`` and the conversation
        document's update; ``analytics``: the turn's ``chat_analytics`` documents, written by
        the next flush before the acknowledgement; ``created``: the conversation's first turn."""
        self._pending.append(
            _Written(conversation_id, first_seq, last_seq, tuple(analytics), created=created)
        )

    def check(self, conversation_id: UUID, *, created: bool = False) -> None:
        """A turn's write to MongoDB that is not acknowledged (the conversation document's
        guard refused it, or it failed part-way, its messages perhaps inserted): the next
        flush still takes back the conversation's documents if SQL no longer holds it."""
        self._pending.append(
            _Written(conversation_id, 0, 0, (), acknowledged=False, created=created)
        )

    def ack_summary(self, conversation_id: UUID, version: int) -> None:
        """The conversation's summary ``version`` reached MongoDB (older ones go with it)."""
        if version > self._summaries.get(conversation_id, 0):
            self._summaries[conversation_id] = version

    @property
    def buffered(self) -> int:
        """Analytics documents waiting for the next flush."""
        return sum(len(w.analytics) for w in self._pending)

    async def flush(self) -> None:
        """The buffered analytics documents in one ``insert_many``, then the acknowledgements
        of the turns whose documents are in MongoDB (and the summaries') in one SQL
        transaction. Waits for a flush already running, so what it had taken is written when
        this returns."""
        async with self._lock:
            pending, self._pending = self._pending, []
            summaries, self._summaries = self._summaries, {}
            if not pending and not summaries:
                return
            written = await self._write_analytics(pending)
            ranges: dict[UUID, list[tuple[int, int]]] = {}
            for w in (w for w in written if w.acknowledged):
                ranges.setdefault(w.conversation_id, []).append((w.first_seq, w.last_seq))
            acks = [
                (conversation_id, first, last)
                for conversation_id, seqs in sorted(ranges.items())
                for first, last in merge_ranges(seqs)
            ]
            if not acks and not summaries:
                return
            # Row locks in the order a conversation's delete takes them (its summaries, then its
            # row), conversations by id: a flush beside a delete, or beside another process's
            # flush, waits for it instead of deadlocking with it.
            try:
                async with write_transaction(self.engine) as conn:
                    await SummaryRepository(conn).mark_summaries_synced(
                        sorted(summaries.items()), datetime.now(UTC)
                    )
                    await ConversationRepository(conn).ack_synced(acks)
            except Exception:
                log.warning(
                    "could not record %d sync acks; the relay will replay them",
                    len(acks) + len(summaries),
                )

    async def _write_analytics(self, pending: list[_Written]) -> list[_Written]:
        """``pending`` less the turns whose analytics documents did not reach MongoDB (left to
        the relay: a failed insert, an owner no longer active) and those of conversations gone
        from SQL (their documents taken back: ``_take_back_gone``)."""
        if not pending:
            return pending
        try:
            kept, gone = await self._check([w.conversation_id for w in pending])
        except Exception as exc:
            self._retry(pending, exc)
            return []
        if gone:
            created = {w.conversation_id for w in pending if w.created}
            await self._take_back_gone(gone, created=created)
            pending = [w for w in pending if w.conversation_id not in gone]
        docs = [d for w in pending if w.conversation_id in kept for d in w.analytics]
        if not docs:
            return [w for w in pending if not w.analytics]
        try:
            await self.documents.insert_analytics_many(docs)
        except Exception as exc:
            self._retry([w for w in pending if w.analytics], exc)
            return [w for w in pending if not w.analytics]
        inserted = {w.conversation_id for w in pending if w.analytics} & kept
        kept = await self._take_back_late(pending, inserted)
        return [w for w in pending if not w.analytics or w.conversation_id in kept]

    async def _check(self, conversation_ids: list[UUID]) -> tuple[set[UUID], set[UUID]]:
        """Of ``conversation_ids``, those still kept by an active owner (one SQL read), and
        those gone from SQL (a second read, only when some were not kept: an owner deactivated
        is no erasure, and their conversations' documents stay)."""
        ids = list(dict.fromkeys(conversation_ids))
        async with read_connection(self.engine) as conn:
            reader = SyncReader(conn)
            kept = await reader.kept_by_active_owners(ids)
            not_kept = [cid for cid in ids if cid not in kept]
            if not not_kept:
                return kept, set()
            return kept, set(not_kept) - await reader.existing(not_kept)

    async def _take_back_gone(self, gone: set[UUID], *, created: set[UUID]) -> None:
        """The documents of conversations gone from SQL deleted again: a turn's write (an
        upsert of the conversation document, its messages, and for a first turn its
        ``conversation_created`` activity, which names the owner an erasure removed) that
        landed after the delete's. The activity only when this flush holds that first turn
        (``created``): a user's delete keeps an older one. It is deleted by its ``_id`` (fixed
        by the conversation's): no filter scans ``user_activities``.

        Why this suffices: a delete (``ConversationService.delete``/``purge``, an erasure's
        too) commits in SQL before it deletes the conversation's documents in MongoDB. A turn
        is acknowledged, or only checked (a write the guard refused, or one that failed), after
        its write returned, and this flush read SQL after that. If the write finished before
        the delete's MongoDB step began, that step removed it; if not, the SQL commit came
        before the write returned, so the read found the conversation gone and its documents
        are deleted here. A delete committed after the read begins its MongoDB step after the
        write returned: that step removes it.

        Should a delete fail, the documents stay (logged): the reconciler's orphan scan
        removes the conversation's, not an activity (the person's id left in
        ``user_activities`` until its retention, if any, expires it)."""
        for conversation_id in sorted(gone):
            try:
                await self.documents.delete_conversation(
                    conversation_id, activity=conversation_id in created
                )
            except Exception as exc:
                log.warning(
                    "could not take back the documents of conversation %s, deleted while its "
                    "turn was written (%s); the reconciler's orphan scan removes them",
                    conversation_id,
                    type(exc).__name__,
                )
            else:
                log.info(
                    "conversation %s was deleted while its turn was written: its documents "
                    "taken back",
                    conversation_id,
                )

    def _retry(self, failed: list[_Written], exc: Exception) -> None:
        """After a failed check or insert: ``failed`` tried again by the next flush (a blip
        then costs the relay nothing), as many as RETRIED at most, the rest the relay's, as
        after a crash."""
        kept_for_retry = failed[-RETRIED:]
        self._pending[:0] = kept_for_retry
        log.warning(
            "could not check or write the chat_analytics documents of %d turns (%d documents: "
            "%s); %d are tried again at the next flush, %d left to the relay",
            len(failed),
            sum(len(w.analytics) for w in failed),
            type(exc).__name__,
            len(kept_for_retry),
            len(failed) - len(kept_for_retry),
        )

    async def _take_back_late(self, pending: list[_Written], inserted: set[UUID]) -> set[UUID]:
        """Of the conversations whose documents were just ``inserted``, those still kept (one
        more SQL read); the documents of the others are deleted again, and their turns left to
        the relay as if the first read had missed them.

        Why this suffices: a delete commits in SQL (the conversation's row) before it deletes
        the conversation's documents in MongoDB (``ConversationService.delete``/``purge``),
        and an erasure commits the deactivation before any of its MongoDB deletes (by
        conversation, then by ``user_id``). Take such a MongoDB delete and its SQL commit
        before it. If our insert finished before the delete began, the delete removes our
        documents. If not, the delete began before our insert finished, and this read, begun
        after the insert returned (each statement outside a transaction sees every commit made
        before it starts), comes after the commit: it finds the conversation gone or its owner
        inactive, and the documents are deleted here. Either way none is left behind.

        Should this read or the delete fail, the documents stay (logged): the reconciler's
        deep check removes those of conversations gone from SQL."""
        try:
            async with read_connection(self.engine) as conn:
                kept = await SyncReader(conn).kept_by_active_owners(list(inserted))
            gone = inserted - kept
            late = [d["_id"] for w in pending if w.conversation_id in gone for d in w.analytics]
            if late:
                await self.documents.delete_analytics(late)
        except Exception as exc:
            log.warning(
                "could not check again the %d conversations of the chat_analytics insert, or "
                "take back the runs of those gone meanwhile (%s); the reconciler's deep check "
                "removes any of a deleted conversation",
                len(inserted),
                type(exc).__name__,
            )
            return inserted
        return kept

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
