"""``run_bench(settings)``: the whole benchmark against the stores ``settings`` name.

The server under test is a real uvicorn process on loopback (``tools.bench.server``);
this process is only the HTTP client and the seeder (bulk writes straight into both stores).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pickle
import shutil
import socket
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import aiohttp
import httpx
import psutil
from pymongo import AsyncMongoClient
from sqlalchemy import text
from sqlalchemy.engine import make_url

from employeevirtual.settings import Settings
from employeevirtual.stores.mongo.documents import DocumentStore
from employeevirtual.stores.mongo.secantus import SecantusServer
from employeevirtual.stores.sql.engine import create_engine
from tools import subprocess_env
from tools.bench.floor import FloorSpec, combined_floor
from tools.bench.processes import connections_on, cpu_by_kind
from tools.bench.seed import SeedSpec, SummarySeed, seed_conversations, seed_load
from tools.bench.server import INSTANT_ANSWER, INSTANT_MODEL, SLOW_MODEL, STREAM_MODEL
from tools.bench.streams import stream_cpu, stream_steps

__all__ = ["BenchPlan", "run_bench"]

PASSWORD = "measured-passphrase-not-a-secret-42"
TURN_MESSAGE = "How are we doing this quarter?"


@dataclass(frozen=True)
class BenchPlan:
    lengths: Sequence[int] = (10, 1_000, 10_000)
    turns: int = 200  # measured sequential turns per length
    history_reads: int = 100  # per page kind and length
    steady_samples: int = 20  # turns whose round trips are counted one by one
    profile_turns: int = 300
    concurrency: Sequence[int] = (1, 10, 100, 1_000)
    slow_seconds: float = 1.0
    stream_turns: int = 200  # streamed turns measured (overhead, CPU)
    stream_open: int = 1_000  # streams open at once on the slow model
    floor_rounds: int = 300
    workers: Sequence[int] = (1, 2)  # plain servers compared on the same load (not on SQLite)
    workers_in_flight: int = 64  # instant-model turns at once
    workers_slow_in_flight: int = 100  # slow-model turns at once
    # instant turns each of the ``workers_in_flight`` clients runs back to back: turns/s is a
    # sustained rate, not one wave's (a wave ends with its slowest worker's share)
    workers_rounds: int = 10

    @classmethod
    def quick(cls) -> BenchPlan:
        return cls(
            lengths=(10, 1_000),
            turns=20,
            history_reads=10,
            steady_samples=5,
            profile_turns=30,
            concurrency=(1, 10, 50),
            slow_seconds=0.2,
            stream_turns=20,
            stream_open=50,
            floor_rounds=50,
            workers_in_flight=32,
            workers_slow_in_flight=50,
            workers_rounds=3,
        )


HISTORY_PAGE = 10  # messages per history page read by the bench


def _pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


def latency_summary(seconds: Sequence[float], wall: float | None = None) -> dict[str, Any]:
    ms = [s * 1000 for s in seconds]
    out: dict[str, Any] = {
        "n": len(ms),
        "p50_ms": _pct(ms, 50),
        "p95_ms": _pct(ms, 95),
        "p99_ms": _pct(ms, 99),
        "max_ms": max(ms) if ms else float("nan"),
        "mean_ms": statistics.fmean(ms) if ms else float("nan"),
    }
    if wall:
        out["throughput_per_s"] = len(ms) / wall
    return out


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class _Stores:
    sql_url: str
    schema: str
    mongo_url: str
    mongo_database: str
    data_dir: Path
    secantus: SecantusServer | None = None
    cleanup: list[Path] = field(default_factory=list)
    # one signing key for every server of the run: a token outlives a server restart
    secret_key: str = field(default_factory=lambda: "bench-signing-key-" + uuid.uuid4().hex)

    @property
    def secantus_pid(self) -> int | None:
        proc = self.secantus._proc if self.secantus is not None else None
        return None if proc is None else proc.pid

    def mongo_cpu_seconds(self) -> float | None:
        """User + system CPU of the embedded SecantusDB (one Python process serving every
        MongoDB command of the run); None with a MongoDB of the environment's."""
        proc = self.secantus._proc if self.secantus is not None else None
        return None if proc is None else _tree_cpu_seconds(proc.pid)

    @property
    def backend(self) -> str:
        sql = make_url(self.sql_url).get_backend_name()
        mongo = "secantusdb" if self.secantus is not None else "mongodb"
        return f"{sql}+{mongo}"


def _tree_cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its children."""
    root = psutil.Process(pid)
    total = 0.0
    for proc in [root, *root.children(recursive=True)]:
        with contextlib.suppress(psutil.NoSuchProcess):
            times = proc.cpu_times()
            total += times.user + times.system
    return total


@contextlib.asynccontextmanager
async def _stores(settings: Settings, *, drop_schema: bool) -> AsyncIterator[_Stores]:
    """The stores the settings name; an embedded default gets a fresh temporary SQLite file and
    SecantusDB directory so the bench never writes into the real data directory."""
    run = uuid.uuid4().hex[:8]
    tmp = Path(tempfile.mkdtemp(prefix="ev-bench-"))
    secantus: SecantusServer | None = None
    if settings.mongodb_url is None:
        secantus = SecantusServer(
            storage_path=str(tmp / "mongodb"), log_path=str(tmp / "secantus.log")
        )
        await secantus.start()
        mongo_url = secantus.url
    else:
        mongo_url = settings.mongodb_url.get_secret_value()
    sql_url = settings.database_url or f"sqlite+aiosqlite:///{tmp / 'bench.db'}"
    backend = make_url(sql_url).get_backend_name()
    if backend != "sqlite" and settings.database_schema == "empl" and drop_schema:
        raise ValueError("refusing to drop schema 'empl': set EV_DATABASE_SCHEMA=bench")
    stores = _Stores(
        sql_url=sql_url,
        schema=settings.database_schema,
        mongo_url=mongo_url,
        mongo_database=f"{settings.mongodb_database}_bench_{run}",
        data_dir=tmp,
        secantus=secantus,
    )
    try:
        yield stores
    finally:
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url)
        with contextlib.suppress(Exception):
            await client.drop_database(stores.mongo_database)
        await client.close()
        if backend != "sqlite" and drop_schema:
            engine = create_engine(sql_url)
            async with engine.begin() as conn:
                await conn.execute(text(f'DROP SCHEMA IF EXISTS "{stores.schema}" CASCADE'))
            await engine.dispose()
        if secantus is not None:
            await secantus.stop()
        shutil.rmtree(tmp, ignore_errors=True)


@dataclass
class _Served:
    base: str
    pid: int
    starts_dir: Path  # where its processes note each call of the slow model

    def cpu_seconds(self) -> float:
        """User + system CPU of the server and its worker processes, read from outside."""
        return _tree_cpu_seconds(self.pid)

    def connections_per_worker(self) -> list[int]:
        """Open client connections each serving process holds (``processes.connections_on``)."""
        return connections_on(self.pid, int(self.base.rsplit(":", 1)[1]))

    async def settle(self, *, idle: float = 0.05, limit: float = 120.0) -> float:
        """Wait until the server is idle (under ``idle`` of a core over a second), so that the
        first rounds of its background jobs after start-up (reconciler, loss check, rollups,
        summaries of the seeded conversations) do not land in the next step's CPU. Returns
        the seconds waited."""
        started = time.perf_counter()
        while time.perf_counter() - started < limit:
            before = self.cpu_seconds()
            await asyncio.sleep(1.0)
            if self.cpu_seconds() - before < idle:
                break
        return time.perf_counter() - started


@contextlib.asynccontextmanager
async def _server(
    stores: _Stores, plan: BenchPlan, *, plain: bool = False, workers: int = 1
) -> AsyncIterator[_Served]:
    """``plain``: no meters, the production event loop (CPU read from /proc); otherwise the
    metered server on asyncio's own loop."""
    port = _free_port()
    starts_dir = stores.data_dir / f"model-starts-{port}"
    starts_dir.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "EV_DATABASE_URL": stores.sql_url,
        "EV_DATABASE_SCHEMA": stores.schema,
        "EV_MONGODB_URL": stores.mongo_url,
        "EV_MONGODB_DATABASE": stores.mongo_database,
        "EV_DATA_DIR": str(stores.data_dir / "server"),
        "EV_SECRET_KEY": stores.secret_key,
        "EV_LOG_LEVEL": "WARNING",
        "EV_BENCH_SLOW_SECONDS": str(plan.slow_seconds),
        "EV_BENCH_STARTS_DIR": str(starts_dir),
        # one bench user drives every conversation: the per-user and per-address abuse limits
        # would measure themselves, not the turn
        "EV_MAX_CONCURRENT_TURNS": "100000",
        "EV_RATE_LIMIT_CHAT": "100000000",
        "EV_RATE_LIMIT_GLOBAL": "100000000",
    }
    flags = ["--plain", "--workers", str(workers)] if plain else []
    log = (stores.data_dir / "server.log").open("wb")
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tools.bench.server",
        "--port",
        str(port),
        *flags,
        env=subprocess_env(env),
        stdout=log,
        stderr=log,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=base) as client:
            for _ in range(6000):
                if proc.returncode is not None:
                    break
                with contextlib.suppress(httpx.TransportError):
                    if (await client.get("/health/live")).status_code == 200:
                        break
                await asyncio.sleep(0.1)
            else:
                raise RuntimeError("bench server did not start in 600 s")
            # every worker up (a plain server's workers start one by one): connections opened
            # before would all land on the first, pinned there by keep-alive
            if plain:
                for _ in range(6000):
                    if proc.returncode is not None or _ready(starts_dir) >= workers:
                        break
                    await asyncio.sleep(0.1)
                else:
                    raise RuntimeError(f"not all {workers} bench workers started in 600 s")
                await asyncio.sleep(0.5)  # from its app's start to its accepting: a few ms
        if proc.returncode is not None:
            raise RuntimeError(
                "bench server exited: " + (stores.data_dir / "server.log").read_text()[-3000:]
            )
        yield _Served(base, proc.pid, starts_dir)
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 20)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        log.close()
        server_log = stores.data_dir / "server.log"
        if server_log.exists():
            shutil.copy(server_log, Path(tempfile.gettempdir()) / "ev-bench-server.log")


def _ready(starts_dir: Path) -> int:
    """Workers whose app has started (``server._note_ready``)."""
    return len(list(starts_dir.glob("ready-*")))


class _Api:
    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client
        self.headers: dict[str, str] = {}
        self.user_id: UUID | None = None

    async def login(self) -> None:
        email = f"bench-{uuid.uuid4().hex[:8]}@example.com"
        r = await self.client.post(
            "/api/auth/register", json={"email": email, "password": PASSWORD, "name": "Bench"}
        )
        r.raise_for_status()
        self.user_id = UUID(r.json()["id"])
        r = await self.client.post(
            "/api/auth/login", data={"username": email, "password": PASSWORD}
        )
        r.raise_for_status()
        self.headers = {"Authorization": f"Bearer {r.json()['access_token']}"}

    async def agent(self, model: str, name: str) -> UUID:
        r = await self.client.post(
            "/api/agents",
            json={"name": name, "instructions": "Answer briefly.", "model": model},
            headers=self.headers,
        )
        r.raise_for_status()
        return UUID(r.json()["id"])

    async def turn(
        self, *, conversation_id: UUID | None = None, agent_id: UUID | None = None
    ) -> tuple[float, httpx.Response]:
        body: dict[str, Any] = {"message": TURN_MESSAGE}
        if conversation_id is not None:
            body["conversation_id"] = str(conversation_id)
        if agent_id is not None:
            body["agent_id"] = str(agent_id)
        started = time.perf_counter()
        r = await self.client.post("/api/chat/agent", json=body, headers=self.headers)
        return time.perf_counter() - started, r

    async def history(self, conversation_id: UUID, before: int | None) -> tuple[float, Any]:
        # pages of 10 at every length: the shortest conversation (10 messages, 14 once the
        # round-trip step has run) then holds a full page too, so lengths compare like for like
        params: dict[str, Any] = {"limit": HISTORY_PAGE}
        if before is not None:
            params["before"] = before
        started = time.perf_counter()
        r = await self.client.get(
            f"/api/conversations/{conversation_id}/messages", params=params, headers=self.headers
        )
        elapsed = time.perf_counter() - started
        r.raise_for_status()
        return elapsed, r.json()

    async def stats(self) -> dict[str, Any]:
        r = await self.client.get("/bench/stats")
        r.raise_for_status()
        return dict(r.json())


def _delta(after: dict[str, Any], before: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in after.items():
        if isinstance(value, dict):
            out[key] = _delta(value, before[key])
        elif key in ("max_loop_lag", "max_callback", "max_gc") or key.startswith("gc_"):
            out[key] = value
        else:
            out[key] = value - before[key]
    return out


def _trips(delta: dict[str, Any], turns: int = 1) -> dict[str, float]:
    t = delta["in_requests"]
    return {
        "sql_statements": t["sql_statements"] / turns,
        "sql_transactions": t["sql_transactions"] / turns,
        "mongo_commands": t["mongo_commands"] / turns,
    }


def _summary_passes(after: dict[str, Any], before: dict[str, Any]) -> int:
    return int(after.get("summaries", {}).get("scheduled", 0)) - int(
        before.get("summaries", {}).get("scheduled", 0)
    )


async def _ok(api: _Api, **kwargs: Any) -> float:
    elapsed, r = await api.turn(**kwargs)
    if r.status_code != 200:
        raise RuntimeError(f"turn failed: HTTP {r.status_code} {r.text[:300]}")
    return elapsed


async def _round_trips(
    api: _Api, agent: UUID, seeded: dict[int, UUID], samples: int, flush_seconds: float
) -> Any:
    """Per-turn driver counts: first turn, then steady-state turns one at a time; and the
    batched ``chat_analytics`` inserts the steady turns cost outside their requests (the
    sync-ack flush's, every ``flush_seconds``), to amortise over them."""
    before = await api.stats()
    _, r = await api.turn(agent_id=agent)
    r.raise_for_status()
    first = _trips(_delta(await api.stats(), before))
    conversation = UUID(r.json()["conversation_id"])
    await asyncio.sleep(flush_seconds + 0.2)  # the first turn's run flushed
    batched_before = (await api.stats())["batched_analytics"]
    steady = []
    for _ in range(samples):
        before = await api.stats()
        await _ok(api, conversation_id=conversation)
        steady.append(_trips(_delta(await api.stats(), before)))
    await asyncio.sleep(flush_seconds + 0.2)  # the last steady turn's run flushed
    batched_after = (await api.stats())["batched_analytics"]
    batched = {k: batched_after[k] - batched_before[k] for k in ("inserts", "documents")}
    by_length: dict[str, Any] = {}
    for length, cid in seeded.items():
        started = await api.stats()
        await _ok(api, conversation_id=cid)
        cold = _trips(_delta(await api.stats(), started))
        before = await api.stats()
        await _ok(api, conversation_id=cid)
        after = await api.stats()
        by_length[str(length)] = {
            "first_turn_after_restart": cold,
            "steady": _trips(_delta(after, before)),
            # summary passes the two turns started: none on a conversation seeded in its
            # steady state (a backlog would start a catch-up here)
            "summary_passes": _summary_passes(after, started),
        }
    return {
        "first_turn": first,
        "steady": steady[-1],
        "steady_all_identical": all(s == steady[0] for s in steady),
        "steady_samples": len(steady),
        # outside the requests: the steady turns' runs, batched (one insert_many a flush)
        "steady_batched_analytics": {**batched, "flush_seconds": flush_seconds},
        "by_length": by_length,
    }


TURN_BLOCK = 10  # turns on one conversation before the latency step moves to the next length


async def _latencies(
    api: _Api, served: _Served, seeded: dict[int, UUID], plan: BenchPlan
) -> list[dict[str, Any]]:
    """On the plain server: turn and history latency at each length, and its CPU per turn read
    from /proc. The lengths take turns (history reads one by one, turns in blocks of
    ``TURN_BLOCK``), so that each meets the same server state (caches, background jobs, the
    SQLite WAL) and the same load of a shared machine: a ratio between lengths measured one
    length after the other also measured whatever drifted in between."""
    lengths = list(seeded)
    # history first, while each conversation holds exactly its length of messages
    # (the round-trip step has already added two turns: 4 messages)
    newest: dict[int, list[float]] = {n: [] for n in lengths}
    deep: dict[int, list[float]] = {n: [] for n in lengths}
    # a page ending at the conversation's middle (at 10 messages: the first full page)
    deep_before = {n: max(HISTORY_PAGE + 1, n // 2 + 1) for n in lengths}
    for _ in range(plan.history_reads):
        for n in lengths:
            newest[n].append((await api.history(seeded[n], None))[0])
    for _ in range(plan.history_reads):
        for n in lengths:
            deep[n].append((await api.history(seeded[n], deep_before[n]))[0])
    pages = {
        n: (
            (await api.history(seeded[n], None))[1],
            (await api.history(seeded[n], deep_before[n]))[1],
        )
        for n in lengths
    }
    for n in lengths:
        for _ in range(3):
            await _ok(api, conversation_id=seeded[n])
    turns: dict[int, list[float]] = {n: [] for n in lengths}
    cpu = dict.fromkeys(lengths, 0.0)
    wall = dict.fromkeys(lengths, 0.0)
    while any(len(turns[n]) < plan.turns for n in lengths):
        for n in lengths:
            block = min(TURN_BLOCK, plan.turns - len(turns[n]))
            if block <= 0:
                continue
            before = served.cpu_seconds()
            started = time.perf_counter()
            turns[n] += [await _ok(api, conversation_id=seeded[n]) for _ in range(block)]
            wall[n] += time.perf_counter() - started
            cpu[n] += served.cpu_seconds() - before
    rows = []
    for n in lengths:
        newest_page, page = pages[n]
        rows.append(
            {
                "messages_before": n,
                "turn": latency_summary(turns[n], wall[n]),
                "server_cpu_ms_per_turn": cpu[n] / plan.turns * 1000,
                "history_newest": {
                    **latency_summary(newest[n]),
                    "messages": len(newest_page["messages"]),
                    "source": newest_page["source"],
                },
                "history_deep": {
                    **latency_summary(deep[n]),
                    "before": deep_before[n],
                    "messages": len(page["messages"]),
                    "source": page["source"],
                },
            }
        )
    return rows


async def _capture_floor(
    client: httpx.AsyncClient,
    api: _Api,
    stores: _Stores,
    documents: DocumentStore,
    cid: UUID,
    settings: Settings,
    rounds: int,
) -> Path:
    """Capture one steady turn's statements and commands on the metered server, for the floor
    (``tools.bench.floor``): the spec's path. ``cid`` is the floor's own conversation: no other
    step writes it, so the replays find it as the captured turn left it at any time."""
    await _ok(api, conversation_id=cid)  # steady: the context cache is warm
    before = await documents.conversations.find_one({"_id": str(cid)})
    (await client.post("/bench/capture/start")).raise_for_status()
    await _ok(api, conversation_id=cid)
    r = await client.post("/bench/capture/stop")
    r.raise_for_status()
    captured = pickle.loads(r.content)
    restore = []
    if before is not None:
        restore.append((stores.mongo_database, documents.conversations.name, before))
    spec = FloorSpec(
        history_messages=settings.agent_context_messages,
        rounds=rounds,
        sql_url=stores.sql_url,
        captured=captured,
        mongo_url=stores.mongo_url,
        mongo_restore=restore,
    )
    path = stores.data_dir / "floor.pickle"
    path.write_bytes(pickle.dumps(spec))
    return path


async def _measure_floor(path: Path) -> dict[str, Any]:
    """The floor of the captured turn, measured in a fresh process."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tools.bench.floor",
        str(path),
        env=subprocess_env(dict(os.environ)),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError("floor measurement failed: " + err.decode()[-3000:])
    floor: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    return floor


async def _profile(client: httpx.AsyncClient, api: _Api, cid: UUID, turns: int) -> Any:
    (await client.post("/bench/profile/start")).raise_for_status()
    before = await api.stats()
    for _ in range(turns):
        await _ok(api, conversation_id=cid)
    delta = _delta(await api.stats(), before)
    r = await client.post("/bench/profile/stop")
    r.raise_for_status()
    summary = dict(r.json())
    summary["turns"] = turns
    summary["server_cpu_ms_per_turn"] = delta["cpu_seconds"] / turns * 1000
    summary["summaries"] = delta.get("summaries", {})  # the passes these turns started
    return summary


def _machine_busy_seconds() -> float:
    """CPU time every process on the machine spent (all cores, not idle or waiting on I/O).
    Linux counts guest time inside user and nice already: not twice."""
    times = psutil.cpu_times()
    unbusy = ("idle", "iowait", "guest", "guest_nice")
    return float(sum(times) - sum(getattr(times, name, 0.0) for name in unbusy))


async def _machine_busy_share(seconds: float) -> float:
    """How busy the machine's cores are over ``seconds`` of this process sleeping (0 to 1)."""
    before, started = _machine_busy_seconds(), time.perf_counter()
    await asyncio.sleep(seconds)
    busy = _machine_busy_seconds() - before
    return busy / ((time.perf_counter() - started) * (os.cpu_count() or 1))


class _MachineTrace:
    """The machine's busy CPU seconds (``_machine_busy_seconds``) against the wall clock,
    sampled every ``interval`` while a run goes on (a read of /proc/stat each)."""

    def __init__(self, interval: float = 0.02) -> None:
        self.interval = interval
        self.samples: list[tuple[float, float]] = []
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> _MachineTrace:
        self.samples.append((time.time(), _machine_busy_seconds()))
        self._task = asyncio.create_task(self._sample())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.samples.append((time.time(), _machine_busy_seconds()))

    async def _sample(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            self.samples.append((time.time(), _machine_busy_seconds()))

    def busy_at(self, when: float) -> float:
        """Busy seconds at ``when`` (wall clock), interpolated between the samples around it."""
        before = self.samples[0]
        for sample in self.samples:
            if sample[0] >= when:
                span = sample[0] - before[0]
                share = (when - before[0]) / span if span > 0 else 1.0
                return before[1] + share * (sample[1] - before[1])
            before = sample
        return self.samples[-1][1]


def _model_starts(
    starts_dir: Path, trace: _MachineTrace, started: float, slow_seconds: float
) -> dict[str, Any] | None:
    """When a burst's turns reached the slow model, from the server processes' notes
    (``server.BenchState.slow_model_started``), in seconds after the burst was sent, and the
    machine's busy CPU seconds from the burst's start until the first model call ended or the
    last began, whichever came first. All the machine's work in that span came before any turn's
    model answered: the turns' own work up to their model calls (and any other load), so it
    bounds how early the last call could have begun (``targets.burst_bound_ms``)."""
    starts = sorted(
        at - started
        for path in starts_dir.glob("*.txt")
        for line in path.read_text().split()
        if (at := float(line)) >= started
    )
    if not starts:
        return None
    until = started + min(starts[-1], starts[0] + slow_seconds)
    return {
        "n": len(starts),
        "first_s": starts[0],
        "p50_s": statistics.median(starts),
        "last_s": starts[-1],
        "machine_cpu_before_answers_s": trace.busy_at(until) - trace.busy_at(started),
    }


def _own_cpu_seconds() -> float:
    """This (client) process's user + system CPU, all threads."""
    times = os.times()
    return times.user + times.system


class _Load:
    """The load client of the concurrency and workers steps: one aiohttp session, no limit on
    connections. httpx cost the bench 9-20 ms of CPU per turn on kept-alive connections at 64
    and 1,000 in flight (its pool checks every idle connection's socket on each request);
    aiohttp costs under 1 ms (docs/bench.md, issue 17). The request is the one ``_Api.turn``
    sends (same path, body bytes, headers) and its time runs from sending it to reading the
    whole body, as httpx's ``post`` does."""

    def __init__(self, base: str, headers: dict[str, str]) -> None:
        self.base = base
        self.headers = {**headers, "Content-Type": "application/json"}
        self.session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> _Load:
        # per-operation timeouts of 120 s, as httpx.Timeout(120.0): no deadline on the whole turn
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=120.0, sock_read=120.0)
        self.session = aiohttp.ClientSession(
            self.base, connector=aiohttp.TCPConnector(limit=0), timeout=timeout
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.session is not None:
            await self.session.close()

    async def turn(self, conversation_id: UUID) -> tuple[float, int]:
        """(seconds, HTTP status) of one turn on ``conversation_id``."""
        assert self.session is not None
        body = {"message": TURN_MESSAGE, "conversation_id": str(conversation_id)}
        # the bytes httpx's ``json=`` sends (compact separators)
        data = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
        started = time.perf_counter()
        async with self.session.post("/api/chat/agent", data=data, headers=self.headers) as r:
            await r.read()
        return time.perf_counter() - started, r.status


async def _concurrency(
    load: _Load,
    served: _Served,
    conversations: list[UUID],
    level: int,
    mongo_cpu: Callable[[], float | None] | None = None,
    *,
    slow_seconds: float | None = None,
    rounds: int = 1,
    secantus_pid: int | None = None,
) -> dict[str, Any]:
    """``level`` turns at once on the plain server (``rounds`` turns back to back on each of
    ``level`` conversations): throughput, latency, errors, CPU per turn:
    the server's, this client's and the whole machine's (stores included: SecantusDB is a
    Python process, and on this machine every process shares the same cores), and the
    embedded SecantusDB's own (``mongo_cpu``: one process, so at most one core's worth).
    ``slow_seconds``: the turns run on the slow model, whose calls are traced
    (``_model_starts``). The machine's CPU per turn is also split by kind of process
    (``processes.cpu_by_kind``; ``secantus_pid``: the embedded SecantusDB's)."""
    mongo = mongo_cpu() if mongo_cpu is not None else None
    kinds = cpu_by_kind(served.pid, secantus_pid)
    cpu = served.cpu_seconds()
    machine, client = _machine_busy_seconds(), _own_cpu_seconds()
    errors: list[str] = []

    async def one(cid: UUID) -> list[float]:
        out: list[float] = []
        for _ in range(rounds):
            try:
                elapsed, status = await load.turn(cid)
            except (aiohttp.ClientError, TimeoutError) as exc:  # transport errors, by kind
                errors.append(type(exc).__name__)
                continue
            if status != 200:
                errors.append(f"HTTP {status}")
                continue
            out.append(elapsed)
        return out

    trace = _MachineTrace() if slow_seconds is not None else contextlib.nullcontext()
    async with trace:
        started, sent_at = time.perf_counter(), time.time()
        results = await asyncio.gather(*(one(cid) for cid in conversations[:level]))
        wall = time.perf_counter() - started
    # the machine's and the client's first: walking the server's processes costs client CPU
    machine, client = _machine_busy_seconds() - machine, _own_cpu_seconds() - client
    after = cpu_by_kind(served.pid, secantus_pid)
    cpu = served.cpu_seconds() - cpu
    if mongo is not None and mongo_cpu is not None:
        mongo = (mongo_cpu() or 0.0) - mongo
    ok = [elapsed for client in results for elapsed in client]
    per_turn = 1000 / max(1, level * rounds)
    mongo_ms = {} if mongo is None else {"mongo_cpu": mongo * per_turn}
    by_kind = {kind: cpu * per_turn for kind, cpu in after.since(kinds).items()}
    by_kind["exited or kernel"] = max(0.0, machine * per_turn - sum(by_kind.values()))
    return {
        "in_flight": level,
        **latency_summary(ok, wall),
        "wall_s": wall,
        "errors": len(errors),
        "error_kinds": sorted(set(errors)),
        "per_turn_ms": {
            "server_cpu": cpu * per_turn,
            "client_cpu": client * per_turn,
            "machine_cpu": machine * per_turn,
            **mongo_ms,
            "machine_by_kind": by_kind,
        },
        "machine_busy": machine / (wall * (os.cpu_count() or 1)),
        **(
            {"model_starts": _model_starts(served.starts_dir, trace, sent_at, slow_seconds)}
            if isinstance(trace, _MachineTrace) and slow_seconds is not None
            else {}
        ),
    }


async def _workers(
    stores: _Stores,
    plan: BenchPlan,
    workers: int,
    credentials: dict[str, str],
    instant: list[UUID],
    slow: list[UUID],
    log: Any,
) -> dict[str, Any]:
    """One plain server with ``workers`` processes: the instant model at ``workers_in_flight``
    turns at once (after two warm-up rounds and the server settling), then the slow model at
    ``workers_slow_in_flight``. The instant run's machine CPU per turn on one worker gives the
    report's bound on the speedup (``report.workers_speedup_bound``)."""
    async with (
        _server(stores, plan, plain=True, workers=workers) as served,
        _Load(served.base, credentials) as load,
    ):
        await served.settle()
        for _ in range(2):  # warm every worker's caches
            await _concurrency(load, served, instant, plan.workers_in_flight)
        await served.settle()
        # what the rest of the machine (stores, other sessions) burns with no turn running: it
        # lands in the run's machine CPU per turn too
        before = await _machine_busy_share(1.0)
        log(f"{workers} worker(s): {plan.workers_in_flight} instant turns in flight")
        fast = await _concurrency(
            load,
            served,
            instant,
            plan.workers_in_flight,
            rounds=plan.workers_rounds,
            secantus_pid=stores.secantus_pid,
        )
        fast["machine_busy_before"] = before
        fast["connections_per_worker"] = served.connections_per_worker()
        log(f"{workers} worker(s): {plan.workers_slow_in_flight} slow turns in flight")
        slow_run = await _concurrency(
            load,
            served,
            slow,
            plan.workers_slow_in_flight,
            slow_seconds=plan.slow_seconds,
            secantus_pid=stores.secantus_pid,
        )
        slow_run["connections_per_worker"] = served.connections_per_worker()
    return {"workers": workers, "instant": fast, "slow": slow_run}


def _client(base: str) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
    return httpx.AsyncClient(base_url=base, limits=limits, timeout=httpx.Timeout(120.0))


async def run_bench(
    settings: Settings,
    *,
    plan: BenchPlan | None = None,
    drop_schema: bool = False,
    log: Any = print,
) -> dict[str, Any]:
    """Run every step and return the results (``report.write_results`` prints and saves them).

    Two kinds of server, one after the other on the same stores: the metered one (driver
    counts, the captured turn for the floor, the profile, streams) and the plain one (latency,
    CPU per turn, concurrency, workers), whose CPU carries no meter."""
    plan = plan or BenchPlan()
    async with _stores(settings, drop_schema=drop_schema) as stores:
        results: dict[str, Any] = {
            "backend": stores.backend,
            "started_at": datetime.now(UTC).isoformat(),
            "plan": {
                "lengths": list(plan.lengths),
                "turns": plan.turns,
                "history_reads": plan.history_reads,
                "concurrency": list(plan.concurrency),
                "slow_seconds": plan.slow_seconds,
                "stream_turns": plan.stream_turns,
                "stream_open": plan.stream_open,
                "workers": list(plan.workers),
            },
            "machine": {
                "cpus": os.cpu_count(),
                "python": sys.version.split()[0],
                "load_average": os.getloadavg(),
            },
            "server": "uvicorn subprocess on 127.0.0.1; metered pass on asyncio's loop, "
            "plain pass (CPU, latency, concurrency) on uvloop without meters",
        }
        engine = create_engine(stores.sql_url, schema=stores.schema)
        mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(stores.mongo_url, tz_aware=True)
        documents = DocumentStore(mongo[stores.mongo_database], window=settings.conversation_window)
        try:
            async with _server(stores, plan) as served, _client(served.base) as client:
                api = _Api(client)
                await api.login()
                assert api.user_id is not None
                credentials = api.headers
                instant = await api.agent(INSTANT_MODEL, "Instant")
                slow = await api.agent(SLOW_MODEL, "Slow")
                # every seeded conversation in the steady state of its length: its summary
                # caught up as the background passes would have left it (no catch-up backlog)
                instant_summaries = SummarySeed.for_agent(settings, INSTANT_MODEL, INSTANT_ANSWER)
                middle_length = plan.lengths[min(1, len(plan.lengths) - 1)]
                seeded: dict[int, UUID] = {}
                floor_conversation: UUID | None = None
                for length in plan.lengths:
                    # at the middle length, a second one: the floor's own conversation (its
                    # turn captured here, replayed beside the steady step below)
                    count = 2 if length == middle_length else 1
                    log(f"seeding {count} conversation(s) of {length:,} messages")
                    t0 = time.perf_counter()
                    seeded[length], *floor_seeded = await seed_conversations(
                        engine,
                        documents,
                        SeedSpec(
                            api.user_id,
                            instant,
                            "Instant",
                            messages=length,
                            count=count,
                            summaries=instant_summaries,
                        ),
                    )
                    floor_conversation = floor_conversation or next(iter(floor_seeded), None)
                    results.setdefault("seed_seconds", {})[str(length)] = time.perf_counter() - t0
                assert floor_conversation is not None
                log("counting store round trips per turn")
                results["round_trips"] = await _round_trips(
                    api, instant, seeded, plan.steady_samples, settings.sync_ack_seconds
                )
                middle = seeded[middle_length]
                # the floor: its turn captured here, measured half before and half after the
                # steady step (below), so that the machine's drift hits the turn and its floor
                log("capturing a steady turn for the floor")
                floor_spec = await _capture_floor(
                    client,
                    api,
                    stores,
                    documents,
                    floor_conversation,
                    settings,
                    max(1, plan.floor_rounds // 2),
                )
                log("profiling steady-state turns")
                results["profile"] = await _profile(client, api, middle, plan.profile_turns)
                top = max([*plan.concurrency, plan.workers_slow_in_flight])
                log(f"seeding {top:,} conversations for the concurrency runs")
                many, quick = await seed_load(
                    engine,
                    documents,
                    settings,
                    api.user_id,
                    (instant, plan.workers_in_flight),
                    (slow, top),
                )
                words_conversation: UUID | None = None
                if plan.stream_turns:
                    words = await api.agent(STREAM_MODEL, "Words")
                    _, first = await api.turn(agent_id=words)
                    first.raise_for_status()
                    words_conversation = UUID(first.json()["conversation_id"])
                    results["streams"] = await stream_steps(
                        client,
                        api.headers,
                        words_conversation=words_conversation,
                        slow_conversations=many[: plan.stream_open],
                        turns=plan.stream_turns,
                        log=log,
                    )
            async with (
                _server(stores, plan, plain=True) as served,
                _client(served.base) as client,
                _Load(served.base, credentials) as load,
            ):
                api = _Api(client)
                api.headers = credentials
                results["plain_settle_s"] = await served.settle()
                log(
                    "turn and history latency at "
                    + ", ".join(f"{n:,}" for n in plan.lengths)
                    + " messages, the lengths taking turns (plain server)"
                )
                log("the floor (bare Agent.run, raw drivers) in a fresh process: first half")
                floor_halves = [await _measure_floor(floor_spec)]
                results["lengths"] = await _latencies(api, served, seeded, plan)
                log("the floor: second half")
                floor_halves.append(await _measure_floor(floor_spec))
                results["floor"] = combined_floor(floor_halves)
                results["concurrency"] = []
                for level in plan.concurrency:
                    log(f"{level:,} turns in flight on a {plan.slow_seconds:g} s model")
                    results["concurrency"].append(
                        await _concurrency(
                            load,
                            served,
                            many,
                            level,
                            stores.mongo_cpu_seconds,
                            slow_seconds=plan.slow_seconds,
                            secantus_pid=stores.secantus_pid,
                        )
                    )
                if words_conversation is not None:
                    log("streamed turns: server CPU against non-streamed (plain server)")

                    async def cpu_seconds(served: _Served = served) -> float:
                        return served.cpu_seconds()

                    results["streams"]["cpu"] = await stream_cpu(
                        client,
                        credentials,
                        words_conversation,
                        plan.stream_turns,
                        cpu_seconds=cpu_seconds,
                    )
            if stores.backend.startswith("sqlite"):
                results["workers"] = "skipped: serve runs one worker on SQLite"
            else:
                results["workers"] = []
                for workers in plan.workers:
                    try:
                        results["workers"].append(
                            await _workers(stores, plan, workers, credentials, quick, many, log)
                        )
                    except RuntimeError as exc:  # the rest of the run is still worth keeping
                        results["workers"] = f"{workers} workers failed: {exc}"
                        break
        finally:
            await engine.dispose()
            await mongo.close()
        results["finished_at"] = datetime.now(UTC).isoformat()
        return results
