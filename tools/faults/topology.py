"""The several-hosts topology of docs/deploy.md on one machine, under the fault workload:
two API processes (``employeevirtual serve`` on two ports, ``EV_BACKGROUND_JOBS=false``), one
``employeevirtual worker`` (the relay and the other background jobs), PostgreSQL, Redis and one
SecantusDB. The workload's clients are spread over both API processes, and API processes are
SIGKILLed mid-run; a client whose process is gone moves on to the other one (what a load
balancer does) and retries with its Idempotency-Key.

``python -m tools.faults.topology [--long]`` (``make faults-topology``) prints the counts;
``tests/faults/test_topology.py`` asserts them. Needs ``EV_TEST_POSTGRES_URL`` and
``EV_TEST_REDIS_URL`` (or ``--postgres``/``--redis``)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console

from employeevirtual.stores.sql.migrate import upgrade
from tools.faults.cluster import Cluster, _free_port, _kill, _stop
from tools.faults.verify import Counts, converge, count
from tools.faults.workload import Route, Workload

__all__ = ["LONG", "RETRY_WINDOW_SECONDS", "SHORT", "TopologyPlan", "run_topology"]

log = logging.getLogger(__name__)

# docs/deploy.md, "When an API process dies": a retry through another process takes the dead
# process's pending Idempotency-Keys over at once on the same host, and within
# EV_INSTANCE_DEAD_SECONDS (20 s) from another host. No client may wait longer than that.
RETRY_WINDOW_SECONDS = 20.0


@dataclass(frozen=True)
class TopologyPlan:
    workers: int = 6  # client workers, spread over the API processes
    users: int = 2
    pace: float = 0.05  # pause between a worker's requests
    before_kill: float = 2.0  # load on both processes before the first kill
    after_kill: float = 2.0  # load after each kill (on the survivor, then on both again)
    kills: int = 1  # SIGKILLs, alternating between the processes
    restart: bool = False  # start a killed process again (the long run)
    converge_timeout: float = 60.0


SHORT = TopologyPlan()
LONG = TopologyPlan(
    workers=24, users=4, pace=0.02, before_kill=8.0, after_kill=8.0, kills=3, restart=True
)


class Topology(Cluster):
    """A Cluster (SecantusDB, a PostgreSQL schema of its own) with the product's own commands
    as processes: two API processes and one worker, sharing Redis."""

    def __init__(self, workdir: Path, *, postgres_url: str, redis_url: str) -> None:
        super().__init__(workdir, name="topology", postgres_url=postgres_url)
        self.redis_url = redis_url
        self.prefix = f"ev:faults:{uuid.uuid4().hex[:8]}:"
        self.api_ports = [_free_port(), _free_port()]
        self.api_urls = [f"http://127.0.0.1:{port}" for port in self.api_ports]
        self.apis: list[asyncio.subprocess.Process | None] = [None, None]
        self.worker: asyncio.subprocess.Process | None = None

    def shared_env(self) -> dict[str, Any]:
        return {
            "EV_REDIS_URL": self.redis_url,
            "EV_RATE_LIMIT_PREFIX": f"{self.prefix}rl:",
            "EV_STREAM_KEY_PREFIX": f"{self.prefix}turn:",
        }

    async def start_api(self, i: int) -> None:
        proc = await self._spawn(
            # one process each (serve's default is one worker per core): the unit SIGKILLed
            [
                "-m",
                "employeevirtual.cli",
                "serve",
                "--workers",
                "1",
                "--port",
                str(self.api_ports[i]),
            ],
            f"api{i}",
            EV_PORT=self.api_ports[i],
            EV_BACKGROUND_JOBS="false",
            **self.shared_env(),
        )
        self.apis[i] = proc
        await _wait_live(proc, self.api_urls[i], self.workdir / f"api{i}.log")

    async def start_worker(self) -> None:
        self.worker = await self._spawn(
            ["-m", "employeevirtual.cli", "worker"], "worker", **self.shared_env()
        )

    async def kill_api(self, i: int) -> None:
        proc = self.apis[i]
        assert proc is not None and proc.returncode is None, f"API process {i} is not running"
        proc.send_signal(signal.SIGKILL)
        await proc.wait()  # reaped: its pid is gone, as its Idempotency-Keys' owner

    async def __aenter__(self) -> Topology:
        await super().__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        for proc in self.apis:
            await _stop(proc)
        await _stop(self.worker, timeout=30)
        await _kill(self.worker)
        await super().__aexit__(*exc)


async def _wait_live(proc: asyncio.subprocess.Process, url: str, log_path: Path) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=1.0) as client:
        async with asyncio.timeout(300):
            while True:
                if proc.returncode is not None:
                    tail = log_path.read_text(errors="replace")[-2000:]  # noqa: ASYNC240 - once, failing
                    raise RuntimeError(f"{url} exited with {proc.returncode}: {tail}")
                try:
                    if (await client.get("/health/live")).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.1)


@dataclass
class TopologyCounts:
    counts: Counts
    served: dict[int, int]  # acknowledged answers per API process
    failovers: int  # clients that moved on from a process they could not reach
    kills: int
    seconds: float


async def run_topology(
    plan: TopologyPlan, *, workdir: Path, postgres_url: str, redis_url: str
) -> TopologyCounts:
    assert plan.restart or plan.kills <= 1, "a second kill needs the first victim restarted"
    started = time.perf_counter()
    counts = Counts(scenario="topology")
    async with Topology(workdir, postgres_url=postgres_url, redis_url=redis_url) as topo:
        await upgrade(topo.engine)  # `employeevirtual migrate` once, before the processes
        await topo.start_worker()
        await asyncio.gather(topo.start_api(0), topo.start_api(1))
        log.info("topology up after %.1f s", time.perf_counter() - started)
        workload = Workload(topo.api_urls, tag="topology")
        kills = 0
        try:
            clients = list(
                await asyncio.gather(*(workload.client(i % 2) for i in range(plan.users)))
            )
            routes = [Route(i % 2) for i in range(plan.workers)]
            stop = asyncio.Event()
            load = asyncio.gather(
                *(
                    workload.worker(
                        clients[i % plan.users], stop=stop, pace=plan.pace, route=routes[i]
                    )
                    for i in range(plan.workers)
                )
            )
            try:
                await asyncio.sleep(plan.before_kill)
                for k in range(plan.kills):
                    victim = (k + 1) % 2  # the second process first, then alternating
                    # a kill under load: the victim is answering its share (bounded wait)
                    answered = workload.served[victim]
                    async with asyncio.timeout(60):
                        while workload.served[victim] < answered + 2:  # noqa: ASYNC110
                            await asyncio.sleep(0.05)
                    await topo.kill_api(victim)
                    kills += 1
                    log.info("API process %d SIGKILLed", victim)
                    await asyncio.sleep(plan.after_kill)
                    if plan.restart:
                        await topo.start_api(victim)
                        for i, route in enumerate(routes):  # a load balancer sends them back
                            route.lane = i % 2
                        await asyncio.sleep(plan.after_kill)
            finally:
                stop.set()
                await load
            counts.faults = f"API process SIGKILLed {kills}x" + (
                ", restarted" if plan.restart else ""
            )
            if not topo.worker or topo.worker.returncode is not None:
                counts.notes.append("the worker process exited")
            snap, seconds = await converge(
                topo.engine, topo.mongo_url, topo.mongo_database, timeout=plan.converge_timeout
            )
            counts.converge_seconds = seconds
            await count(
                counts,
                workload.ops,
                snap,
                engine=topo.engine,
                mongo_url=topo.mongo_url,
                database=topo.mongo_database,
            )
        finally:
            await workload.close()
    return TopologyCounts(
        counts=counts,
        served=dict(workload.served),
        failovers=workload.failovers,
        kills=kills,
        seconds=time.perf_counter() - started,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.faults.topology", description=__doc__)
    parser.add_argument("--long", action="store_true", help="the long run")
    parser.add_argument("--postgres", default=os.environ.get("EV_TEST_POSTGRES_URL"))
    parser.add_argument("--redis", default=os.environ.get("EV_TEST_REDIS_URL"))
    parser.add_argument("--workdir", type=Path, help="keep logs and data here")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    if not args.postgres or not args.redis:
        parser.error("needs PostgreSQL and Redis: EV_TEST_POSTGRES_URL and EV_TEST_REDIS_URL")
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING)
    plan = LONG if args.long else SHORT
    with tempfile.TemporaryDirectory(prefix="ev-topology-") as tmp:
        result = asyncio.run(
            run_topology(
                plan,
                workdir=args.workdir or Path(tmp),
                postgres_url=args.postgres,
                redis_url=args.redis,
            )
        )
    c = result.counts
    Console(width=200).print(
        f"topology ({'long' if args.long else 'short'}, {result.seconds:.1f} s): "
        f"{c.faults}; attempted {c.attempted}, acknowledged {c.acknowledged} "
        f"(per API process {result.served}), retried {c.retried}, failovers {result.failovers}, "
        f"lost {c.lost}, duplicated {c.duplicated}, unexpected {c.unexpected}, "
        f"gave up {c.gave_up}, blocked max {c.blocked_max:.2f} s (p99 {c.blocked_p99:.2f} s, "
        f"window {RETRY_WINDOW_SECONDS:g} s), converged in {c.converge_seconds} s"
    )
    if c.notes:
        Console(width=200).print("; ".join(c.notes[:8]))
    ok = c.ok and c.gave_up == 0 and c.blocked_max <= RETRY_WINDOW_SECONDS
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
