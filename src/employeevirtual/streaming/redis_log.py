"""The turn log shared by every server process (``RedisTurnLog``, ``EV_REDIS_URL``): a Redis
stream per turn (``XADD … MAXLEN max_events``) and a small hash with the owner, both with a TTL
(``running_seconds`` while it runs, ``retention_seconds`` once it ended), so any process can
serve a resume. The process running the turn also keeps the events in memory and serves its
own followers from there. Redis gets the events from one background writer, every event
pending in one pipeline: a round trip awaited per streamed word slowed the turn by the
Redis latency per word and cost CPU. Cancelling goes through a pub/sub channel to whichever
process runs the turn.

Connections (redis-py's default pool refuses a command at once, "Too many connections", once
100 are busy): the short commands (registration, the writer's pipelines, info, keys, cancel)
share one ``BlockingConnectionPool`` of at most ``max_connections``, a command waiting up to
``pool_timeout`` seconds for one. A follower of another process's turn blocks in XREAD, holding
its connection for the whole wait, so those reads have a pool of their own, at most
``max_readers``: followers cannot starve the registrations. Past ``max_readers`` blocked reads a
follower waits for one to end, up to its read's ``wait``, and then reads nothing (its caller
sends a keep-alive and reads again): it waits, it does not fail. The cancel listener holds one
connection of its own."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
from collections.abc import Callable
from typing import Any
from uuid import UUID

from redis.asyncio import Redis
from redis.exceptions import RedisError
from redis.typing import KeyT, StreamIdT

from employeevirtual.errors import Unavailable
from employeevirtual.stores.redis_pool import open_redis
from employeevirtual.streaming.events import TurnEvent
from employeevirtual.streaming.memory_log import MemoryTurnLog, TurnInfo
from employeevirtual.tasks import detached, raise_if_cancelling, stop_task

__all__ = ["RedisTurnLog"]

log = logging.getLogger(__name__)


class RedisTurnLog:
    def __init__(
        self,
        url: str,
        *,
        prefix: str,
        memory: MemoryTurnLog,
        linger_seconds: float = 0.01,
        max_pending: int = 10_000,
        max_connections: int = 32,
        max_readers: int = 64,
        pool_timeout: float = 30.0,
    ) -> None:
        """``linger_seconds``: how long the writer lets events gather before it sends them (a
        turn's end is sent at once); ``max_pending``: past this many unsent events an append
        waits for them to be sent (Redis slower than the turns); ``max_connections``: the
        short commands' pool; ``max_readers``: the blocking reads' pool; ``pool_timeout``: how
        long a short command waits for a connection (then ``ConnectionError``)."""
        self._redis = open_redis(
            url, max_connections=max_connections, timeout=pool_timeout, socket_timeout=None
        )
        self._reader = open_redis(
            url, max_connections=max_readers, timeout=pool_timeout, socket_timeout=None
        )
        self._readers = asyncio.Semaphore(max_readers)  # a read waits here, bounded by its wait
        self._subscriber: Redis = Redis.from_url(
            url, socket_connect_timeout=5, health_check_interval=30
        )  # the cancel listener's one connection
        self._prefix = prefix
        self.memory = memory
        self._linger = linger_seconds
        self._max_pending = max_pending
        self._cancel_callbacks: list[Callable[[UUID], None]] = []
        self._listener: asyncio.Task[None] | None = None
        self._pending: list[tuple[UUID, TurnEvent, str]] = []  # in append order: ids ascend
        self._waiters: list[asyncio.Future[None]] = []  # flushes of (at least) what is pending
        self._wake = asyncio.Event()  # something is pending
        self._urgent = asyncio.Event()  # someone waits: no lingering
        self._writer: asyncio.Task[None] | None = None

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
        if self._writer is not None:  # their queued events first: the deletes below come last
            await self.flush()
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
        """Kept in memory at once (the id, this process's followers) and queued for Redis. A
        turn's end returns once the turn is in Redis, so that a client that saw it can resume
        on any process."""
        stored = await self.memory.append(turn_id, event)
        if not stored.id:
            return stored
        body = json.dumps(stored.data, separators=(",", ":"), default=str)
        self._pending.append((turn_id, stored, body))
        if stored.terminal or len(self._pending) >= self._max_pending:
            await self.flush()
        else:
            self._start_writer()
            self._wake.set()
        return stored

    async def flush(self) -> None:
        """Return once every event appended so far is written to Redis (or failed, logged)."""
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        self._urgent.set()
        self._wake.set()
        self._start_writer()
        await waiter

    def _start_writer(self) -> None:
        if self._writer is None or self._writer.done():
            self._writer = detached(self._write_loop(), name="turn-log-redis-writer")

    async def _write_loop(self) -> None:
        """Sends all that is pending, for every turn, in one pipeline; a failed send is logged
        and the loop goes on (the turns go on; only other processes miss those events)."""
        while True:
            await self._wake.wait()
            if self._linger > 0 and not self._urgent.is_set():
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._linger):
                        await self._urgent.wait()
            self._wake.clear()
            self._urgent.clear()
            batch, self._pending = self._pending, []
            waiters, self._waiters = self._waiters, []
            try:
                if batch:
                    await self._write(batch)
            except Exception as exc:  # followers on this process still have them
                log.warning("turn events not kept in Redis: %s", type(exc).__name__)
            finally:
                _release(waiters)
            raise_if_cancelling()

    async def _write(self, batch: list[tuple[UUID, TurnEvent, str]]) -> None:
        running, retention = int(self.memory.running * 1000), int(self.memory.retention * 1000)
        async with self._redis.pipeline(transaction=False) as pipe:
            for turn_id, stored, body in batch:
                events, info = self._events_key(turn_id), self._info_key(turn_id)
                pipe.xadd(
                    events,
                    {"k": stored.kind, "d": body},
                    id=f"0-{stored.id}",
                    maxlen=self.memory.max_events,
                    approximate=False,  # a hard cap: exact trimming, O(1) per add
                )
                if stored.kind == "turn":
                    pipe.hset(info, "conversation_id", str(stored.data.get("conversation_id")))
                    pipe.pexpire(events, running)
                if stored.terminal:
                    pipe.hset(info, "finished", "1")
                    pipe.pexpire(events, retention)
                    pipe.pexpire(info, retention)
            await pipe.execute()

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
        streams: dict[KeyT, StreamIdT] = {self._events_key(turn_id): f"0-{after}"}
        reply: Any
        try:
            if wait <= 0:  # no wait: a short command
                reply = await self._redis.xread(streams)
            else:
                try:
                    async with asyncio.timeout(wait):
                        await self._readers.acquire()
                except TimeoutError:  # every reader blocked all along: nothing came this time
                    return []
                try:
                    reply = await self._reader.xread(streams, block=max(1, int(wait * 1000)))
                finally:
                    self._readers.release()
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
            self._listener = detached(self._listen(), name="turn-cancel-listener")

    async def _listen(self) -> None:
        while True:
            try:
                async with self._subscriber.pubsub() as pubsub:
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
        """What is still queued gets a few seconds to reach Redis; nobody is left waiting."""
        listener, self._listener = self._listener, None
        await stop_task(listener)
        await self.memory.aclose()  # nothing is queued after this
        if self._writer is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(5.0):
                    await self.flush()
        writer, self._writer = self._writer, None
        await stop_task(writer)
        waiters, self._waiters = self._waiters, []
        _release(waiters)
        await self._redis.aclose()
        await self._reader.aclose()
        await self._subscriber.aclose()


def _release(waiters: list[asyncio.Future[None]]) -> None:
    for waiter in waiters:
        if not waiter.done():  # one whose appender was cancelled is done already
            waiter.set_result(None)


def _unavailable(exc: Exception) -> Unavailable:
    log.warning("turn event store (Redis) failed: %s", type(exc).__name__)
    return Unavailable(
        "the turn event store is unavailable; retry shortly", headers={"Retry-After": "2"}
    )
