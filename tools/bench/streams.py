"""Step 6: live (streamed) turns. Our overhead to the ``turn`` event and the first ``delta``,
many streams open at once on the slow model (errors, memory per open stream) and resume latency
(``stream_steps``, on the metered server); server CPU of a streamed turn against a non-streamed
one (``stream_cpu``, on the plain server: no meters, the production event loop, CPU read from
outside)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from uuid import UUID

import httpx

__all__ = ["stream_cpu", "stream_steps"]

SSE = {"Accept": "text/event-stream"}


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def _events(response: httpx.Response) -> AsyncIterator[tuple[str, str | None]]:
    kind, event_id = "message", None
    async for line in response.aiter_lines():
        if line.startswith("event: "):
            kind = line[7:]
        elif line.startswith("id: "):
            event_id = line[4:]
        elif not line and kind != "message":
            yield kind, event_id
            kind, event_id = "message", None


async def _stats(client: httpx.AsyncClient) -> dict[str, Any]:
    r = await client.get("/bench/stats")
    r.raise_for_status()
    return dict(r.json())


async def _streamed(
    client: httpx.AsyncClient, headers: dict[str, str], cid: UUID
) -> tuple[float, float, str, str]:
    """(seconds to ``turn``, seconds to the first ``delta``, turn id, last id)."""
    body = {"message": "How are we doing?", "conversation_id": str(cid)}
    started = time.perf_counter()
    to_turn = to_delta = float("nan")
    turn_id, last = "", ""
    async with client.stream("POST", "/api/chat/agent", json=body, headers={**headers, **SSE}) as r:
        r.raise_for_status()
        turn_id = r.headers["X-Turn-Id"]
        async for kind, event_id in _events(r):
            now = time.perf_counter() - started
            last = event_id or last
            if kind == "turn":
                to_turn = now
            elif kind == "delta" and to_delta != to_delta:  # first one (nan != nan)
                to_delta = now
            elif kind in ("done", "error"):
                if kind == "error":
                    raise RuntimeError("a streamed bench turn failed")
                break
    return to_turn, to_delta, turn_id, last


async def _plain(client: httpx.AsyncClient, headers: dict[str, str], cid: UUID) -> None:
    body = {"message": "How are we doing?", "conversation_id": str(cid)}
    r = await client.post("/api/chat/agent", json=body, headers=headers)
    r.raise_for_status()


async def _overhead(
    client: httpx.AsyncClient, headers: dict[str, str], cid: UUID, turns: int
) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    for _ in range(min(10, turns)):  # warm up (steady state)
        await _streamed(client, headers, cid)
    before = await _stats(client)
    to_turn, to_delta, turns_seen = [], [], []
    for _ in range(turns):
        a, b, turn_id, last = await _streamed(client, headers, cid)
        to_turn.append(a)
        to_delta.append(b)
        turns_seen.append((turn_id, last))
    after = await _stats(client)
    chunks = after["first_chunks"] - before["first_chunks"]
    model_first = (after["first_chunk_seconds"] - before["first_chunk_seconds"]) / max(1, chunks)
    overhead = [d - model_first for d in to_delta]
    return {
        "turns": turns,
        "model_first_chunk_ms": model_first * 1000,
        "to_turn_ms": {"p50": _pct(to_turn, 0.5) * 1000, "p99": _pct(to_turn, 0.99) * 1000},
        "to_first_delta_ms": {
            "p50": _pct(to_delta, 0.5) * 1000,
            "p99": _pct(to_delta, 0.99) * 1000,
        },
        "overhead_to_first_delta_ms": {
            "p50": _pct(overhead, 0.5) * 1000,
            "p99": _pct(overhead, 0.99) * 1000,
        },
    }, turns_seen


async def stream_cpu(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    cid: UUID,
    turns: int,
    *,
    cpu_seconds: Callable[[], Awaitable[float]],
) -> dict[str, Any]:
    """Server CPU per turn (``cpu_seconds``: the server's CPU so far), same model and
    conversation, streamed against not (alternating blocks so that drift on a shared machine
    hits both). On the plain server: the metered one times every event-loop callback and
    counts every statement, which a streamed turn has more of. Also the time to the first
    ``delta`` there (the production loop, no meters; the model answers at once, its own time
    to the first chunk is measured on the metered server)."""
    for _ in range(min(10, turns)):  # warm up: the first streamed turns of a process
        await _streamed(client, headers, cid)
        await _plain(client, headers, cid)
    cpu = {"streamed": 0.0, "plain": 0.0}
    to_delta: list[float] = []
    block = max(1, turns // 4)
    for _ in range(4):
        for kind in ("plain", "streamed"):
            before = await cpu_seconds()
            for _ in range(block):
                if kind == "streamed":
                    to_delta.append((await _streamed(client, headers, cid))[1])
                else:
                    await _plain(client, headers, cid)
            cpu[kind] += await cpu_seconds() - before
    n = 4 * block
    streamed, plain = cpu["streamed"] / n * 1000, cpu["plain"] / n * 1000
    return {
        "turns_each": n,
        "streamed_ms": streamed,
        "plain_ms": plain,
        "ratio": streamed / plain if plain else float("nan"),
        "to_first_delta_ms": {
            "p50": _pct(to_delta, 0.5) * 1000,
            "p99": _pct(to_delta, 0.99) * 1000,
        },
    }


async def _resume(
    client: httpx.AsyncClient, headers: dict[str, str], finished: list[tuple[str, str]]
) -> dict[str, Any]:
    """A finished turn's events from the middle (``Last-Event-ID``) to ``done``."""
    seconds = []
    for turn_id, last in finished:
        middle = str(max(1, int(last or "2") // 2))
        started = time.perf_counter()
        async with client.stream(
            "GET",
            f"/api/chat/turns/{turn_id}/events",
            headers={**headers, "Last-Event-ID": middle},
        ) as r:
            r.raise_for_status()
            async for kind, _ in _events(r):
                if kind in ("done", "error"):
                    break
        seconds.append(time.perf_counter() - started)
    return {
        "samples": len(seconds),
        "p50_ms": _pct(seconds, 0.5) * 1000,
        "p99_ms": _pct(seconds, 0.99) * 1000,
    }


async def _many_open(
    client: httpx.AsyncClient, headers: dict[str, str], conversations: list[UUID]
) -> dict[str, Any]:
    """Every conversation streams a turn on the slow model at once; the server's resident memory
    is sampled while they are open."""
    before = await _stats(client)
    peak = {"rss": before["rss_bytes"], "live": 0}
    errors: list[str] = []
    done = asyncio.Event()

    async def sample() -> None:
        while not done.is_set():
            s = await _stats(client)
            if s["live_turns"] >= peak["live"]:
                peak["live"] = s["live_turns"]
                peak["rss"] = max(peak["rss"], s["rss_bytes"])
            await asyncio.sleep(0.2)

    async def one(cid: UUID) -> None:
        try:
            await _streamed(client, headers, cid)
        except (httpx.HTTPError, RuntimeError) as exc:
            errors.append(type(exc).__name__)

    sampler = asyncio.create_task(sample())
    started = time.perf_counter()
    await asyncio.gather(*(one(c) for c in conversations))
    wall = time.perf_counter() - started
    done.set()
    await sampler
    grown = peak["rss"] - before["rss_bytes"]
    return {
        "streams": len(conversations),
        "errors": len(errors),
        "error_kinds": sorted(set(errors)),
        "wall_s": wall,
        "peak_live_turns": peak["live"],
        "rss_before_mb": before["rss_bytes"] / 1e6,
        "rss_peak_mb": peak["rss"] / 1e6,
        "kb_per_open_stream": grown / max(1, peak["live"]) / 1000,
    }


async def stream_steps(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    *,
    words_conversation: UUID,
    slow_conversations: list[UUID],
    turns: int,
    log: Any = print,
) -> dict[str, Any]:
    log(f"streamed turns: overhead to the first delta ({turns} turns)")
    overhead, finished = await _overhead(client, headers, words_conversation, turns)
    log("streamed turns: resume latency")
    resume = await _resume(client, headers, finished[: min(100, len(finished))])
    log(f"streamed turns: {len(slow_conversations):,} streams open at once on the slow model")
    many = await _many_open(client, headers, slow_conversations)
    return {"overhead": overhead, "resume": resume, "many_open": many}
