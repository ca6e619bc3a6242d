"""Where a live turn's events are kept, so a client can follow, leave and resume.

Two backends, one interface, the same bounds:

- ``MemoryTurnLog``: in this process. At most ``max_events`` events per turn (the oldest are
  dropped), at most ``max_turns`` turns (finished ones evicted oldest first), and a finished turn
  is kept ``retention_seconds``; a turn that never finishes is dropped after ``running_seconds``.
- ``RedisTurnLog`` (``EV_REDIS_URL``): a Redis stream per turn (``XADD … MAXLEN max_events``)
  and a small hash with the owner, both with a TTL (``running_seconds`` while it runs,
  ``retention_seconds`` once it ended), so any server process can serve a resume. The process
  running the turn also keeps the events in memory and serves its own followers from there.
  Cancelling goes through a pub/sub channel to whichever process runs the turn.

Event ids are the turn's own counter, 1, 2, 3 … (``0-N`` inside Redis): a client's
``Last-Event-ID`` means the same thing on every process.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol
from uuid import UUID

from redis.asyncio import Redis
from redis.exceptions import RedisError

from employeevirtual.errors import Unavailable
from employeevirtual.streaming.events import TurnEvent
from employeevirtual.tasks import stop_task

__all__ = ["MemoryTurnLog", "RedisTurnLog", "TurnInfo", "TurnLog", "make_turn_log", "parse_id"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TurnInfo:
    owner: UUID
    conversation_id: UUID | None
    finished: bool


def parse_id(value: str | None) -> int:
    """A ``Last-Event-ID`` as the counter it names; anything else means "from the start"."""
    if not value:
        return 0
    try:
        number = int(value.strip())
    except ValueError:
        return 0
    return max(number, 0)


class TurnLog(Protocol):
    async def open(self, turn_id: UUID, *, owner: UUID, conversation_id: UUID | None) -> None: ...

    async def append(self, turn_id: UUID, event: TurnEvent) -> TurnEvent: ...

    async def info(self, turn_id: UUID) -> TurnInfo | None: ...

    async def read(self, turn_id: UUID, after: int, *, wait: float) -> list[TurnEvent]: ...

    async def publish_cancel(self, turn_id: UUID) -> None: ...

    async def bind_key(self, owner: UUID, key: str, turn_id: UUID | None) -> None: ...

    async def key_turn(self, owner: UUID, key: str) -> UUID | None: ...

    async def forget_owner(self, owner: UUID) -> int:
        """Drop every turn of ``owner`` (their erasure); how many were dropped."""
        ...

    def on_cancel(self, callback: Callable[[UUID], None]) -> None: ...

    async def aclose(self) -> None: ...


async def follow(
    turn_log: TurnLog, turn_id: UUID, after: int, *, heartbeat: float
) -> AsyncIterator[list[TurnEvent] | None]:
    """The events after ``after`` until the turn's ``done``/``error``, in batches (whatever
    arrived since the last read: one write to the client for several events); ``None`` when
    nothing came for ``heartbeat`` seconds (the caller sends a keep-alive). The iteration stops
    at the end, or when the turn's events are gone (expired) before it."""
    while True:
        events = await turn_log.read(turn_id, after, wait=heartbeat)
        if not events:
            if await turn_log.info(turn_id) is None:
                return
            yield None
            continue
        for i, event in enumerate(events):
            if event.terminal:
                yield events[: i + 1]
                return
        after = int(events[-1].id)
        yield events


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
        self._keys: dict[tuple[UUID, str], UUID] = {}
        self._cancel_callbacks: list[Callable[[UUID], None]] = []

    def __len__(self) -> int:
        return len(self._streams)

    def _purge(self, now: float) -> None:
        expired = [
            turn_id
            for turn_id, s in self._streams.items()
            if (s.finished_at is not None and s.finished_at + self.retention < now)
            or (s.finished_at is None and s.opened_at + self.running < now)
        ]
        for turn_id in expired:
            self._drop(turn_id)
        if len(self._streams) >= self.max_turns:
            finished = [t for t, s in self._streams.items() if s.finished_at is not None]
            for turn_id in finished[: len(self._streams) - self.max_turns + 1]:
                self._drop(turn_id)
        while len(self._streams) >= self.max_turns:  # all running: the oldest goes
            self._drop(next(iter(self._streams)))

    def _drop(self, turn_id: UUID) -> None:
        stream = self._streams.pop(turn_id, None)
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
        if stored.terminal:
            stream.finished_at = time.monotonic()
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


class RedisTurnLog:
    def __init__(self, url: str, *, prefix: str, memory: MemoryTurnLog) -> None:
        self._redis: Redis = Redis.from_url(url, socket_connect_timeout=5, health_check_interval=30)
        self._prefix = prefix
        self.memory = memory
        self._cancel_callbacks: list[Callable[[UUID], None]] = []
        self._listener: asyncio.Task[None] | None = None

    def _events_key(self, turn_id: UUID) -> str:
        return f"{self._prefix}{turn_id}:events"

    def _info_key(self, turn_id: UUID) -> str:
        return f"{self._prefix}{turn_id}:info"

    @property
    def _channel(self) -> str:
        return f"{self._prefix}cancel"

    async def forget_owner(self, owner: UUID) -> int:
        """Every turn's info hash is looked at (SCAN: the log holds few, short-lived turns)."""
        dropped = await self.memory.forget_owner(owner)
        async for key in self._redis.scan_iter(match=f"{self._prefix}*:info", count=500):
            if (await self._redis.hget(key, "owner")) == str(owner).encode():
                name = key.decode() if isinstance(key, bytes) else str(key)
                await self._redis.delete(key, name.removesuffix(":info") + ":events")
                dropped += 1
        return dropped

    async def open(self, turn_id: UUID, *, owner: UUID, conversation_id: UUID | None) -> None:
        await self.memory.open(turn_id, owner=owner, conversation_id=conversation_id)
        ttl = int(self.memory.running * 1000)
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.hset(
                    self._info_key(turn_id),
                    mapping={"owner": str(owner), "conversation_id": str(conversation_id or "")},
                )
                pipe.pexpire(self._info_key(turn_id), ttl)
                await pipe.execute()
        except RedisError as exc:  # the turn runs all the same; only this process can serve it
            log.warning("turn not registered in Redis: %s", type(exc).__name__)

    async def append(self, turn_id: UUID, event: TurnEvent) -> TurnEvent:
        stored = await self.memory.append(turn_id, event)
        if not stored.id:
            return stored
        body = json.dumps(stored.data, separators=(",", ":"), default=str)
        events, info = self._events_key(turn_id), self._info_key(turn_id)
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.xadd(
                    events,
                    {"k": stored.kind, "d": body},
                    id=f"0-{stored.id}",
                    maxlen=self.memory.max_events,
                    approximate=False,  # a hard cap: exact trimming, O(1) per add
                )
                if stored.kind == "turn":
                    pipe.hset(info, "conversation_id", str(stored.data.get("conversation_id")))
                    pipe.pexpire(events, int(self.memory.running * 1000))
                if stored.terminal:
                    retention = int(self.memory.retention * 1000)
                    pipe.hset(info, "finished", "1")
                    pipe.pexpire(events, retention)
                    pipe.pexpire(info, retention)
                await pipe.execute()
        except RedisError as exc:  # followers on this process still have it; others miss it
            log.warning("turn event not kept in Redis: %s", type(exc).__name__)
        return stored

    async def info(self, turn_id: UUID) -> TurnInfo | None:
        local = await self.memory.info(turn_id)
        if local is not None:
            return local
        try:
            raw: Any = await self._redis.hgetall(self._info_key(turn_id))
        except RedisError as exc:
            raise _unavailable(exc) from None
        if not raw:
            return None
        values = {k.decode(): v.decode() for k, v in raw.items()}
        conversation = values.get("conversation_id") or ""
        return TurnInfo(
            owner=UUID(values["owner"]),
            conversation_id=UUID(conversation) if conversation not in ("", "None") else None,
            finished=values.get("finished") == "1",
        )

    async def read(self, turn_id: UUID, after: int, *, wait: float) -> list[TurnEvent]:
        if self.memory.has(turn_id):
            return await self.memory.read(turn_id, after, wait=wait)
        block = int(wait * 1000) if wait > 0 else None
        try:
            reply: Any = await self._redis.xread(
                {self._events_key(turn_id): f"0-{after}"}, block=block
            )
        except RedisError as exc:
            raise _unavailable(exc) from None
        events: list[TurnEvent] = []
        for _key, entries in reply or []:
            for entry_id, fields in entries:
                number = entry_id.decode().partition("-")[2]
                kind = fields[b"k"].decode()
                events.append(TurnEvent(kind, json.loads(fields[b"d"]), number))
        return events

    def _key_key(self, owner: UUID, key: str) -> str:
        digest = hashlib.sha256(key.encode()).hexdigest()
        return f"{self._prefix}key:{owner}:{digest}"

    async def bind_key(self, owner: UUID, key: str, turn_id: UUID | None) -> None:
        await self.memory.bind_key(owner, key, turn_id)
        name = self._key_key(owner, key)
        try:
            if turn_id is None:
                await self._redis.delete(name)
            else:
                await self._redis.set(name, str(turn_id), px=int(self.memory.running * 1000))
        except RedisError as exc:  # a retry elsewhere then waits for the key's response (409)
            log.warning("Idempotency-Key binding not kept in Redis: %s", type(exc).__name__)

    async def key_turn(self, owner: UUID, key: str) -> UUID | None:
        local = await self.memory.key_turn(owner, key)
        if local is not None:
            return local
        try:
            value: Any = await self._redis.get(self._key_key(owner, key))
        except RedisError as exc:  # the key's claim then answers (409 while it runs)
            log.warning("Idempotency-Key binding not read from Redis: %s", type(exc).__name__)
            return None
        return UUID(value.decode()) if value else None

    async def publish_cancel(self, turn_id: UUID) -> None:
        if self.memory.has(turn_id):
            await self.memory.publish_cancel(turn_id)
            return
        try:
            await self._redis.publish(self._channel, str(turn_id))
        except RedisError as exc:
            raise _unavailable(exc) from None

    def on_cancel(self, callback: Callable[[UUID], None]) -> None:
        self.memory.on_cancel(callback)
        self._cancel_callbacks.append(callback)
        if self._listener is None:
            self._listener = asyncio.create_task(self._listen(), name="turn-cancel-listener")

    async def _listen(self) -> None:
        while True:
            try:
                async with self._redis.pubsub() as pubsub:
                    await pubsub.subscribe(self._channel)
                    async for message in pubsub.listen():
                        if message.get("type") != "message":
                            continue
                        with contextlib.suppress(ValueError):
                            turn_id = UUID(message["data"].decode())
                            for callback in self._cancel_callbacks:
                                callback(turn_id)
            except RedisError as exc:
                log.warning("turn cancel listener: %s; resubscribing", type(exc).__name__)
                await asyncio.sleep(1.0)

    async def aclose(self) -> None:
        listener, self._listener = self._listener, None
        await stop_task(listener)
        await self.memory.aclose()
        await self._redis.aclose()


def _unavailable(exc: Exception) -> Unavailable:
    log.warning("turn event store (Redis) failed: %s", type(exc).__name__)
    return Unavailable(
        "the turn event store is unavailable; retry shortly", headers={"Retry-After": "2"}
    )


def make_turn_log(
    redis_url: str | None,
    *,
    prefix: str,
    max_events: int,
    max_turns: int,
    retention_seconds: float,
    running_seconds: float,
) -> TurnLog:
    memory = MemoryTurnLog(
        max_events=max_events,
        max_turns=max_turns,
        retention_seconds=retention_seconds,
        running_seconds=running_seconds,
    )
    if redis_url:
        return RedisTurnLog(redis_url, prefix=prefix, memory=memory)
    return memory


def encode_data(data: dict[str, Any]) -> str:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False, default=str)
