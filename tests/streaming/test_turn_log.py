"""The turn event log's bounds, in process and in Redis (real Redis when EV_TEST_REDIS_URL)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import uuid
from collections.abc import AsyncIterator
from types import SimpleNamespace

import pytest
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from employeevirtual.errors import Unavailable
from employeevirtual.streaming import log as log_module
from employeevirtual.streaming import memory_log as memory_log_module
from employeevirtual.streaming.events import TurnEvent
from employeevirtual.streaming.log import MemoryTurnLog, RedisTurnLog, follow, parse_id

REDIS_URL = os.environ.get("EV_TEST_REDIS_URL")


def _memory(**bounds: float) -> MemoryTurnLog:
    values = {"max_events": 16, "max_turns": 4, "retention_seconds": 60, "running_seconds": 120}
    return MemoryTurnLog(**{**values, **bounds})  # type: ignore[arg-type]


def _delta(i: int) -> TurnEvent:
    return TurnEvent("delta", {"delta": f"w{i} "})


async def test_events_per_turn_are_capped_and_ids_keep_counting() -> None:
    log = _memory()
    turn, owner = uuid.uuid4(), uuid.uuid4()
    await log.open(turn, owner=owner, conversation_id=None)
    for i in range(40):
        stored = await log.append(turn, _delta(i))
        assert stored.id == str(i + 1)
    kept = await log.read(turn, 0, wait=0)
    assert [e.id for e in kept] == [str(i) for i in range(25, 41)]  # the newest 16
    assert [e.id for e in await log.read(turn, 38, wait=0)] == ["39", "40"]


async def test_turns_are_capped_finished_ones_evicted_first_and_expire() -> None:
    log = _memory(max_turns=3, retention_seconds=0.05)
    owner = uuid.uuid4()
    turns = [uuid.uuid4() for _ in range(5)]
    await log.open(turns[0], owner=owner, conversation_id=None)
    await log.append(turns[0], TurnEvent("done", {}))
    await log.open(turns[1], owner=owner, conversation_id=None)
    await log.open(turns[2], owner=owner, conversation_id=None)
    await log.open(turns[3], owner=owner, conversation_id=None)  # evicts the finished one
    assert await log.info(turns[0]) is None
    assert [await log.info(t) is not None for t in turns[1:4]] == [True, True, True]
    await log.append(turns[1], TurnEvent("done", {}))
    await asyncio.sleep(0.1)
    await log.open(turns[4], owner=owner, conversation_id=None)  # purges the expired one
    assert await log.info(turns[1]) is None
    assert len(log) == 3


async def test_follow_waits_for_live_events_and_beats_while_idle() -> None:
    log = _memory()
    turn = uuid.uuid4()
    await log.open(turn, owner=uuid.uuid4(), conversation_id=None)
    got: list[str | None] = []

    async def reader() -> None:
        async for batch in follow(log, turn, 0, heartbeat=0.05):
            got.extend([None] if batch is None else [e.kind for e in batch])

    task = asyncio.create_task(reader())
    await asyncio.sleep(0.12)
    await log.append(turn, _delta(0))
    await log.append(turn, TurnEvent("done", {}))
    await asyncio.wait_for(task, 2)
    assert got[-2:] == ["delta", "done"] and got[0] is None  # heartbeats before the events


def _kinds(batch: list[TurnEvent] | None) -> list[str]:
    assert batch is not None
    return [e.kind for e in batch]


async def test_follow_sends_text_in_frames_the_first_words_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With a frame, the first delta is a batch of its own; the follower then waits one frame
    (its sleep held here until released: no timing), and the words that came meanwhile go out
    together. Without a frame it never waits, and every delta is its own batch."""
    asked: list[float] = []
    gate = asyncio.Event()

    async def held(seconds: float) -> None:
        asked.append(seconds)
        await gate.wait()

    monkeypatch.setattr(log_module, "asyncio", SimpleNamespace(sleep=held))
    log = _memory()
    turn = uuid.uuid4()
    await log.open(turn, owner=uuid.uuid4(), conversation_id=None)
    events = follow(log, turn, 0, heartbeat=5, frame=0.1)
    await log.append(turn, TurnEvent("turn", {}))
    assert _kinds(await anext(events)) == ["turn"]
    await log.append(turn, _delta(0))
    assert _kinds(await anext(events)) == ["delta"]
    following = asyncio.ensure_future(anext(events))
    for i in range(1, 10):
        await log.append(turn, _delta(i))
    await log.append(turn, TurnEvent("done", {}))
    for _ in range(5):
        await asyncio.sleep(0)
    assert asked == [0.1] and not following.done()  # waiting out its frame
    gate.set()
    assert _kinds(await following) == ["delta"] * 9 + ["done"]

    asked.clear()
    other = uuid.uuid4()
    await log.open(other, owner=uuid.uuid4(), conversation_id=None)
    unframed = follow(log, other, 0, heartbeat=5, frame=0.0)
    for i in range(3):
        await log.append(other, _delta(i))
        assert _kinds(await anext(unframed)) == ["delta"]
    assert asked == []


def _clock(monkeypatch: pytest.MonkeyPatch, start: float) -> list[float]:
    """The turn log's monotonic clock, set by the test."""
    now = [start]
    monkeypatch.setattr(memory_log_module, "time", SimpleNamespace(monotonic=lambda: now[0]))
    return now


async def test_expired_turns_go_without_a_scan_and_a_turn_can_finish_only_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = _clock(monkeypatch, 1000.0)
    log = _memory(max_turns=1000, retention_seconds=5, running_seconds=10)
    owner = uuid.uuid4()
    finished, running = uuid.uuid4(), uuid.uuid4()
    await log.open(finished, owner=owner, conversation_id=None)
    await log.open(running, owner=owner, conversation_id=None)
    await log.append(finished, TurnEvent("done", {}))  # kept until 1005
    now[0] = 1004.0
    await log.append(finished, TurnEvent("error", {}))  # a second end does not restart it
    now[0] = 1006.0
    await log.open(uuid.uuid4(), owner=owner, conversation_id=None)
    assert await log.info(finished) is None  # its retention is over
    assert await log.info(running) is not None  # running until 1010
    now[0] = 1011.0
    await log.open(uuid.uuid4(), owner=owner, conversation_id=None)
    assert await log.info(running) is None
    for _ in range(5000):  # the clock stands still: turns leave by the cap, not by time
        turn = uuid.uuid4()
        await log.open(turn, owner=owner, conversation_id=None)
        await log.append(turn, TurnEvent("done", {}))
    assert len(log) <= 1000
    assert len(log._expiries) <= 4 * 1000 + 64 + 2  # entries of evicted turns are let go


async def test_at_the_cap_the_turn_that_finished_first_goes_first() -> None:
    log = _memory(max_turns=3)
    owner = uuid.uuid4()
    first, second, third = (uuid.uuid4() for _ in range(3))
    for turn in (first, second, third):
        await log.open(turn, owner=owner, conversation_id=None)
    await log.append(second, TurnEvent("done", {}))
    await log.append(first, TurnEvent("done", {}))
    await log.open(uuid.uuid4(), owner=owner, conversation_id=None)
    assert await log.info(second) is None  # finished before ``first``, though opened after it
    assert await log.info(first) is not None and await log.info(third) is not None


def test_last_event_id_parsing() -> None:
    assert parse_id(None) == 0 and parse_id("") == 0 and parse_id("junk") == 0
    assert parse_id(" 7 ") == 7 and parse_id("-3") == 0


def test_unknown_event_kinds_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown turn event kind"):
        TurnEvent("surprise", {})


@pytest.fixture
async def redis_prefix() -> AsyncIterator[str]:
    """A key prefix of the test's own, its keys deleted afterwards."""
    assert REDIS_URL is not None
    prefix = f"ev:test:{uuid.uuid4().hex}:"
    yield prefix
    redis = Redis.from_url(REDIS_URL)
    keys = [k async for k in redis.scan_iter(match=f"{prefix}*")]
    if keys:
        await redis.delete(*keys)
    await redis.aclose()


@pytest.mark.redis
@pytest.mark.skipif(not REDIS_URL, reason="EV_TEST_REDIS_URL is not set")
async def test_redis_stream_has_a_hard_cap_and_a_ttl(redis_prefix: str) -> None:
    assert REDIS_URL is not None
    prefix = redis_prefix
    log = RedisTurnLog(REDIS_URL, prefix=prefix, memory=_memory(retention_seconds=30))
    redis = Redis.from_url(REDIS_URL)
    turn = uuid.uuid4()
    try:
        await log.open(turn, owner=uuid.uuid4(), conversation_id=None)
        await log.append(turn, TurnEvent("turn", {"conversation_id": str(uuid.uuid4())}))
        for i in range(40):
            await log.append(turn, _delta(i))
        await log.flush()  # deltas go to Redis in the background
        key = f"{prefix}{turn}:events"
        assert await redis.xlen(key) == 16
        running_ttl = await redis.pttl(key)
        assert 30_000 < running_ttl <= 120_000
        await log.append(turn, TurnEvent("done", {}))
        assert 0 < await redis.pttl(key) <= 30_000
        assert 0 < await redis.pttl(f"{prefix}{turn}:info") <= 30_000
        # another process (no memory of the turn) reads it from Redis
        other = RedisTurnLog(REDIS_URL, prefix=prefix, memory=_memory())
        info = await other.info(turn)
        assert info is not None and info.finished
        events = await other.read(turn, 38, wait=0)
        assert [e.id for e in events] == ["39", "40", "41", "42"]
        assert events[-1].kind == "done"
        await other.aclose()
    finally:
        await redis.aclose()
        await log.aclose()


@pytest.fixture
def pipelines(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """The Redis pipelines this process sends (redis-py's own ``Pipeline.execute``, one round
    trip each), as the keys of their commands."""
    sent: list[list[str]] = []
    execute = Pipeline.execute

    async def counted(self: Pipeline, raise_on_error: bool = True) -> list[object]:
        sent.append([str(args[1]) for args, _options in self.command_stack])
        return await execute(self, raise_on_error)

    monkeypatch.setattr(Pipeline, "execute", counted)
    return sent


def _sent(pipelines: list[list[str]], prefix: str) -> int:
    """How many of ``pipelines`` wrote keys under ``prefix`` (not another test's servers)."""
    return sum(any(key.startswith(prefix) for key in keys) for keys in pipelines)


@pytest.mark.redis
@pytest.mark.skipif(not REDIS_URL, reason="EV_TEST_REDIS_URL is not set")
async def test_redis_writes_are_batched_and_all_there_once_the_end_returns(
    pipelines: list[list[str]], redis_prefix: str
) -> None:
    """500 words, the appender yielding after each as an agent does: a few pipelines, not one
    per word; once ``done`` returns, every event is in the Redis stream, in order."""
    assert REDIS_URL is not None
    n = 500
    log = RedisTurnLog(REDIS_URL, prefix=redis_prefix, memory=_memory(max_events=1000))
    redis = Redis.from_url(REDIS_URL)
    turn = uuid.uuid4()
    try:
        await log.open(turn, owner=uuid.uuid4(), conversation_id=None)
        opened = _sent(pipelines, redis_prefix)
        await log.append(turn, TurnEvent("turn", {"conversation_id": str(uuid.uuid4())}))
        for i in range(n):
            await log.append(turn, _delta(i))
            await asyncio.sleep(0)
        await log.append(turn, TurnEvent("done", {"answer": "ok"}))
        sent = _sent(pipelines, redis_prefix) - opened
        assert sent <= n // 10, f"{sent} pipelines for {n + 2} events"
        entries = await redis.xrange(f"{redis_prefix}{turn}:events")
        assert [e[0].decode() for e in entries] == [f"0-{i}" for i in range(1, n + 3)]
        kinds = [e[1][b"k"].decode() for e in entries]
        assert kinds == ["turn"] + ["delta"] * n + ["done"]
        assert [json.loads(e[1][b"d"])["delta"] for e in entries[1:-1]] == [
            f"w{i} " for i in range(n)
        ]
        assert 0 < await redis.pttl(f"{redis_prefix}{turn}:info") <= 60_000  # retention
    finally:
        await redis.aclose()
        await log.aclose()


@pytest.mark.redis
@pytest.mark.skipif(not REDIS_URL, reason="EV_TEST_REDIS_URL is not set")
async def test_redis_end_is_readable_from_another_process_and_a_long_queue_waits(
    pipelines: list[list[str]], redis_prefix: str
) -> None:
    """Two turns at once, appended without yielding: with at most 8 unsent events an append
    waits for a send every 8 events (backpressure); once each ``done`` returned, a second
    process's log reads every event of that turn."""
    assert REDIS_URL is not None
    log = RedisTurnLog(
        REDIS_URL, prefix=redis_prefix, memory=_memory(max_events=1000), max_pending=8
    )
    other = RedisTurnLog(REDIS_URL, prefix=redis_prefix, memory=_memory(max_events=1000))
    owner = uuid.uuid4()
    turns = [uuid.uuid4(), uuid.uuid4()]
    try:
        for turn in turns:
            await log.open(turn, owner=owner, conversation_id=None)
        opened = _sent(pipelines, redis_prefix)
        for i in range(40):
            await log.append(turns[i % 2], _delta(i))
        # no yield in between: only the bound made it send
        assert _sent(pipelines, redis_prefix) - opened == 40 // 8
        for end, turn in zip(("done", "error"), turns, strict=True):
            await log.append(turn, TurnEvent(end, {"n": 1}))
            info = await other.info(turn)
            assert info is not None and info.owner == owner and info.finished
            events = await other.read(turn, 0, wait=0)
            assert [e.id for e in events] == [str(i) for i in range(1, 22)]
            assert [e.kind for e in events] == ["delta"] * 20 + [end]
            first = 0 if turn == turns[0] else 1
            assert [e.data for e in events[:-1]] == [
                {"delta": f"w{i} "} for i in range(first, 40, 2)
            ]
    finally:
        await other.aclose()
        await log.aclose()


@pytest.mark.redis
@pytest.mark.skipif(not REDIS_URL, reason="EV_TEST_REDIS_URL is not set")
async def test_a_failed_redis_write_is_logged_and_the_writer_goes_on(
    redis_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A turn whose events key is not a stream (WRONGTYPE): its end still returns, the warning
    names the error only, and the next turn's events reach Redis."""
    assert REDIS_URL is not None
    caplog.set_level(logging.WARNING, logger="employeevirtual.streaming.redis_log")
    log = RedisTurnLog(REDIS_URL, prefix=redis_prefix, memory=_memory())
    redis = Redis.from_url(REDIS_URL)
    broken, fine = uuid.uuid4(), uuid.uuid4()
    try:
        await redis.set(f"{redis_prefix}{broken}:events", "not a stream")
        for turn in (broken, fine):
            await log.open(turn, owner=uuid.uuid4(), conversation_id=None)
            await log.append(turn, TurnEvent("delta", {"delta": "secret words"}))
            await log.append(turn, TurnEvent("done", {}))
        assert "ResponseError" in caplog.text and "secret" not in caplog.text
        assert await redis.xlen(f"{redis_prefix}{fine}:events") == 2
    finally:
        await redis.aclose()
        await log.aclose()


async def test_a_redis_outage_leaves_local_turns_working_and_says_503_for_remote_ones() -> None:
    """Nothing listens on port 1: the turn still runs and is followed on its own process."""
    log = RedisTurnLog("redis://127.0.0.1:1/0", prefix="ev:down:", memory=_memory())
    turn, owner = uuid.uuid4(), uuid.uuid4()
    try:
        await log.open(turn, owner=owner, conversation_id=None)
        await log.append(turn, _delta(0))
        await log.append(turn, TurnEvent("done", {}))  # the failed write does not hold it
        info = await log.info(turn)
        assert info is not None and info.owner == owner and info.finished
        assert [e.kind for e in await log.read(turn, 0, wait=0)] == ["delta", "done"]
        assert await log.key_turn(owner, "k") is None
        with pytest.raises(Unavailable):
            await log.info(uuid.uuid4())
        with pytest.raises(Unavailable):
            await log.publish_cancel(uuid.uuid4())
    finally:
        await log.aclose()


def _named(name: str) -> str:
    assert REDIS_URL is not None
    return REDIS_URL + ("&" if "?" in REDIS_URL else "?") + f"client_name={name}"


async def _connections(name: str) -> int:
    """How many connections named ``name`` Redis has open (its own CLIENT LIST)."""
    assert REDIS_URL is not None
    admin = Redis.from_url(REDIS_URL, socket_connect_timeout=3, socket_timeout=3)
    try:
        return sum(c["name"] == name for c in await admin.client_list())
    finally:
        await admin.aclose()


@pytest.mark.redis
@pytest.mark.skipif(not REDIS_URL, reason="EV_TEST_REDIS_URL is not set")
async def test_300_live_turns_and_their_remote_followers_share_bounded_pools(
    redis_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    """redis-py's default pool refused a command at once past 100 busy connections ("Too many
    connections"): 300 turns at once were not registered in Redis (not resumable from another
    process), and their followers on another process, each holding a connection in a blocking
    XREAD, got a 503. Now the short commands wait for one of ``max_connections`` and the
    blocking reads for one of ``max_readers`` (a pool of their own: followers cannot starve the
    registrations): 300 turns opened and ended while 300 remote followers wait for them, all
    registered and followed to their end, on at most 4 + 4 connections per process."""
    caplog.set_level(logging.WARNING, logger="employeevirtual.streaming.redis_log")
    n = 300
    runs, follows = f"ev-test-run-{uuid.uuid4().hex}", f"ev-test-follow-{uuid.uuid4().hex}"
    bounds = {"max_connections": 4, "max_readers": 4, "pool_timeout": 30.0}
    log = RedisTurnLog(_named(runs), prefix=redis_prefix, memory=_memory(max_turns=n), **bounds)
    other = RedisTurnLog(_named(follows), prefix=redis_prefix, memory=_memory(), **bounds)
    owner = uuid.uuid4()
    turns = [uuid.uuid4() for _ in range(n)]

    async def run(turn: uuid.UUID) -> None:
        await log.open(turn, owner=owner, conversation_id=None)
        await log.bind_key(owner, f"key-{turn}", turn)
        await asyncio.sleep(0)  # its followers are waiting by now
        await log.append(turn, _delta(0))
        await log.append(turn, TurnEvent("done", {}))

    async def follow_remotely(turn: uuid.UUID) -> list[str]:
        seen: list[TurnEvent] = []
        while not seen or not seen[-1].terminal:
            seen += await other.read(turn, int(seen[-1].id) if seen else 0, wait=1.0)
        return [e.kind for e in seen]

    try:
        followed = asyncio.gather(*(follow_remotely(t) for t in turns))
        await asyncio.gather(*(run(t) for t in turns))
        assert await followed == [["delta", "done"]] * n
        infos = await asyncio.gather(*(other.info(t) for t in turns))
        assert all(i is not None and i.owner == owner and i.finished for i in infos), infos
        keys = await asyncio.gather(*(other.key_turn(owner, f"key-{t}") for t in turns))
        assert keys == turns
        assert caplog.records == []  # nothing "not registered" / "not kept in Redis"
        assert 1 <= await _connections(runs) <= 4
        assert 1 <= await _connections(follows) <= 4 + 4
    finally:
        await other.aclose()
        await log.aclose()
