"""The turn log in this process (``MemoryTurnLog``): at most ``max_events`` events per turn
(the oldest are dropped), at most ``max_turns`` turns (finished ones evicted oldest first); a
finished turn is kept ``retention_seconds``, one that never finishes ``running_seconds``. With
Redis it is also where the process running a turn serves that turn's own followers."""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from uuid import UUID

from employeevirtual.streaming.events import TurnEvent

__all__ = ["MemoryTurnLog", "TurnInfo"]


@dataclass(frozen=True, slots=True)
class TurnInfo:
    owner: UUID
    conversation_id: UUID | None
    finished: bool


@dataclass(slots=True)
class _Stream:
    info: TurnInfo
    opened_at: float
    events: list[TurnEvent] = field(default_factory=list)
    first_id: int = 1  # id of events[0]
    next_id: int = 1
    finished_at: float | None = None
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    key: tuple[UUID, str] | None = None  # the Idempotency-Key that started it, while it runs


class MemoryTurnLog:
    def __init__(
        self,
        *,
        max_events: int,
        max_turns: int,
        retention_seconds: float,
        running_seconds: float,
    ) -> None:
        self.max_events = max_events
        self.max_turns = max_turns
        self.retention = retention_seconds
        self.running = running_seconds
        self._streams: OrderedDict[UUID, _Stream] = OrderedDict()
        # when each turn may expire, soonest first (a turn is listed when it opens and again
        # when it finishes; an entry that no longer applies is skipped): opening a turn drops
        # the expired ones without looking at every turn kept
        self._expiries: list[tuple[float, UUID]] = []
        self._finished: OrderedDict[UUID, None] = OrderedDict()  # in the order they finished
        self._keys: dict[tuple[UUID, str], UUID] = {}
        self._cancel_callbacks: list[Callable[[UUID], None]] = []

    def __len__(self) -> int:
        return len(self._streams)

    def _expires_at(self, stream: _Stream) -> float:
        if stream.finished_at is not None:
            return stream.finished_at + self.retention
        return stream.opened_at + self.running

    def _purge(self, now: float) -> None:
        while self._expiries and self._expiries[0][0] < now:
            _, turn_id = heapq.heappop(self._expiries)
            stream = self._streams.get(turn_id)
            if stream is not None and self._expires_at(stream) < now:
                self._drop(turn_id)
        if len(self._expiries) > 4 * self.max_turns + 64:  # entries of turns long evicted
            self._expiries = [(self._expires_at(s), t) for t, s in self._streams.items()]
            heapq.heapify(self._expiries)
        while len(self._streams) >= self.max_turns and self._finished:
            self._drop(next(iter(self._finished)))
        while len(self._streams) >= self.max_turns:  # all running: the oldest goes
            self._drop(next(iter(self._streams)))

    def _drop(self, turn_id: UUID) -> None:
        stream = self._streams.pop(turn_id, None)
        self._finished.pop(turn_id, None)
        if stream is not None:
            if stream.key is not None:
                self._keys.pop(stream.key, None)
            stream.changed.set()  # wake its followers: they find it gone and stop

    def has(self, turn_id: UUID) -> bool:
        return turn_id in self._streams

    async def forget_owner(self, owner: UUID) -> int:
        mine = [t for t, s in self._streams.items() if s.info.owner == owner]
        for turn_id in mine:
            self._drop(turn_id)
        return len(mine)

    async def open(self, turn_id: UUID, *, owner: UUID, conversation_id: UUID | None) -> None:
        now = time.monotonic()
        self._purge(now)
        self._streams[turn_id] = _Stream(TurnInfo(owner, conversation_id, False), now)
        heapq.heappush(self._expiries, (now + self.running, turn_id))

    async def append(self, turn_id: UUID, event: TurnEvent) -> TurnEvent:
        stream = self._streams.get(turn_id)
        if stream is None:  # evicted while running: nobody can follow it any more
            return event
        stored = TurnEvent(event.kind, event.data, str(stream.next_id))
        stream.next_id += 1
        if stored.kind == "turn" and stored.data.get("conversation_id"):
            stream.info = TurnInfo(
                stream.info.owner, UUID(str(stored.data["conversation_id"])), False
            )
        stream.events.append(stored)
        if len(stream.events) > self.max_events:
            drop = len(stream.events) - self.max_events
            del stream.events[:drop]
            stream.first_id += drop
        if stored.terminal and stream.finished_at is None:
            stream.finished_at = time.monotonic()
            self._finished[turn_id] = None
            heapq.heappush(self._expiries, (stream.finished_at + self.retention, turn_id))
            stream.info = TurnInfo(stream.info.owner, stream.info.conversation_id, True)
        changed, stream.changed = stream.changed, asyncio.Event()
        changed.set()
        return stored

    async def info(self, turn_id: UUID) -> TurnInfo | None:
        stream = self._streams.get(turn_id)
        return None if stream is None else stream.info

    def _after(self, stream: _Stream, after: int) -> list[TurnEvent]:
        start = max(after + 1 - stream.first_id, 0)
        return stream.events[start:]

    async def read(self, turn_id: UUID, after: int, *, wait: float) -> list[TurnEvent]:
        stream = self._streams.get(turn_id)
        if stream is None:
            return []
        events = self._after(stream, after)
        if events or stream.finished_at is not None or wait <= 0:
            return events
        changed = stream.changed
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(changed.wait(), wait)
        stream = self._streams.get(turn_id)
        return [] if stream is None else self._after(stream, after)

    async def publish_cancel(self, turn_id: UUID) -> None:
        for callback in self._cancel_callbacks:
            callback(turn_id)

    async def bind_key(self, owner: UUID, key: str, turn_id: UUID | None) -> None:
        """The running turn an Idempotency-Key started (None: it ended); dropped with it."""
        old = self._keys.pop((owner, key), None)
        if old is not None and old in self._streams:
            self._streams[old].key = None
        if turn_id is not None and turn_id in self._streams:
            self._streams[turn_id].key = (owner, key)
            self._keys[(owner, key)] = turn_id

    async def key_turn(self, owner: UUID, key: str) -> UUID | None:
        turn_id = self._keys.get((owner, key))
        stream = self._streams.get(turn_id) if turn_id is not None else None
        return turn_id if stream is not None and stream.finished_at is None else None

    def on_cancel(self, callback: Callable[[UUID], None]) -> None:
        self._cancel_callbacks.append(callback)

    async def aclose(self) -> None:
        for turn_id in list(self._streams):
            self._drop(turn_id)
