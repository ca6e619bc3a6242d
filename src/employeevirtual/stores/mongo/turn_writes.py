"""Concurrent turns' MongoDB writes sent together (``TurnWrites``, ``DocumentStore.write_turn``).

Each turn writes its messages (an insert) and its conversation document's guarded update. A
MongoDB server spends most of its CPU per command, not per document: the embedded SecantusDB
(one Python process) spent 0.9-1.2 CPU-s on 1,000 turns written as 2,000 commands and
0.21-0.23 CPU-s on the same written 50-100 at a time, and the tail of a burst of turns waited
on it (docs/bench.md). So one writer per store sends what the turns queued while its previous
commands ran: one ``insert_many`` of their messages and one unordered ``bulk_write`` of their
conversation updates. A turn alone still costs two commands, sent at once.

Per turn, the outcome is what its own two commands would have given: True when its guarded
update applied, False when the guard refused it (a replay, or an older turn after a newer one),
the error when its messages or its update failed (then its update is not sent: messages first,
as before). A conversation's updates keep their order: two turns of one conversation never
share a batch.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pymongo import UpdateOne
from pymongo.errors import BulkWriteError

from employeevirtual.stores.mongo.shapes import Document

__all__ = ["DUPLICATE_KEY", "MAX_BATCH", "TurnWrites"]

DUPLICATE_KEY = 11000  # MongoDB's E11000
MAX_BATCH = 100  # turns per batch: two commands of at most a few hundred KB each


@dataclass(eq=False)  # a turn is itself: hashed by identity
class _Turn:
    conversation: str
    messages: list[Document]
    update: UpdateOne
    done: asyncio.Future[bool] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    # the request's context (its id, its trace, a bench's tally): a batch is sent in its
    # first turn's, not in that of the turn that happened to start the writer
    context: contextvars.Context = field(default_factory=contextvars.copy_context)


class TurnWrites:
    """One store's writer of turns (see the module's doc)."""

    def __init__(self, messages: Any, conversations: Any) -> None:
        self._messages = messages
        self._conversations = conversations
        self._queue: list[_Turn] = []
        self._writer: asyncio.Task[None] | None = None

    async def write(
        self, conversation: str, messages: Sequence[Document], update: UpdateOne
    ) -> bool:
        turn = _Turn(conversation, list(messages), update)
        self._queue.append(turn)
        if self._writer is None:
            self._next_batch()
        return await turn.done

    def _next_batch(self) -> None:
        """A task for the queued turns' next batch, in its first turn's context (not in that of
        whichever turn started the writing). The batch is taken when the task starts: the
        turns that arrive meanwhile go with it."""
        if self._queue:
            self._writer = asyncio.get_running_loop().create_task(
                self._send(), name="mongo-turn-writes", context=self._queue[0].context
            )
            self._writer.add_done_callback(self._ended)

    def _ended(self, task: asyncio.Task[None]) -> None:
        """A batch's task that ended without handing over to the next (cancelled while the loop
        shuts down, before its first step or during its batch): the turns still queued are
        cancelled with it, and a later turn starts the writing afresh instead of queueing
        behind a task that is gone."""
        if self._writer is task:
            _cancel(self._queue)
            self._queue = []
            self._writer = None

    async def _send(self) -> None:
        batch = self._take()  # the oldest queued turn first: the one whose context this is
        try:
            await self._write(batch)
        except Exception as exc:  # unforeseen (a reply of an unknown shape): the batch fails
            _fail(batch, exc)  # with it, as each turn alone would have; the next one goes on
        except BaseException:  # cancelled: so are its turns (``_ended``: the queued ones)
            _cancel(batch)
            raise
        self._writer = None
        self._next_batch()

    def _take(self) -> list[_Turn]:
        """Up to ``MAX_BATCH`` turns in arrival order, one per conversation."""
        batch: list[_Turn] = []
        later: list[_Turn] = []
        conversations: set[str] = set()
        for turn in self._queue:
            if len(batch) >= MAX_BATCH or turn.conversation in conversations:
                later.append(turn)
            else:
                conversations.add(turn.conversation)
                batch.append(turn)
        self._queue = later
        return batch

    async def _write(self, batch: list[_Turn]) -> None:
        owners = [turn for turn in batch for _ in turn.messages]
        try:
            failed = await self._insert([m for turn in batch for m in turn.messages], owners)
        except Exception as exc:  # the command failed whole: every turn of it
            _fail(batch, exc)
            return
        for turn, error in failed.items():
            _fail([turn], error)
        ready = [turn for turn in batch if turn not in failed]
        if not ready:
            return
        try:
            await self._conversations.bulk_write([turn.update for turn in ready], ordered=False)
        except BulkWriteError as exc:
            refused: dict[int, Exception | None] = {}
            for write_error in exc.details.get("writeErrors", []):
                code = write_error.get("code")
                refused[write_error["index"]] = None if code == DUPLICATE_KEY else exc
            for index, turn in enumerate(ready):
                if index not in refused:
                    _settle(turn, True)
                elif (cause := refused[index]) is None:
                    _settle(turn, False)  # the guard refused it: the upsert met the _id
                else:
                    _fail([turn], cause)
            return
        except Exception as exc:
            _fail(ready, exc)
            return
        for turn in ready:
            _settle(turn, True)

    async def _insert(
        self, messages: list[Document], owners: list[_Turn]
    ) -> dict[_Turn, Exception]:
        """The messages not there yet (replays skipped); the turns whose messages failed."""
        if not messages:
            return {}
        try:
            await self._messages.insert_many(messages, ordered=False)
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            if not errors:
                raise
            return {
                owners[error["index"]]: exc
                for error in errors
                if error.get("code") != DUPLICATE_KEY
            }
        return {}


def _settle(turn: _Turn, applied: bool) -> None:
    if not turn.done.done():
        turn.done.set_result(applied)


def _cancel(turns: list[_Turn]) -> None:
    for turn in turns:
        if not turn.done.done():
            turn.done.cancel()


def _fail(turns: list[_Turn], exc: BaseException) -> None:
    for turn in turns:
        if not turn.done.done():
            turn.done.set_exception(exc)
