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
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pymongo import UpdateOne
from pymongo.errors import BulkWriteError

from employeevirtual.stores.mongo.shapes import Document
from employeevirtual.tasks import detached

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
            # its own context: it writes for every turn queued while it runs, not the first's
            self._writer = detached(self._write_queued(), name="mongo-turn-writer")
        return await turn.done

    async def _write_queued(self) -> None:
        batch: list[_Turn] = []
        try:
            while self._queue:
                batch = self._take()
                try:
                    await self._write(batch)
                except Exception as exc:  # unforeseen (a reply of an unknown shape): the batch
                    _fail(batch, exc)  # fails with it, as each turn alone would have; go on
                batch = []
        except BaseException:  # the writer itself cancelled (the loop closing): so are they
            for turn in [*batch, *self._queue]:
                if not turn.done.done():
                    turn.done.cancel()
            self._queue = []
            raise
        finally:
            self._writer = None

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


def _fail(turns: list[_Turn], exc: BaseException) -> None:
    for turn in turns:
        if not turn.done.done():
            turn.done.set_exception(exc)
