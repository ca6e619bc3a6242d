"""The five scenarios: each runs the load, breaks something for real, heals, and counts."""

from __future__ import annotations

import asyncio
import logging
import shutil
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pymongo import AsyncMongoClient

from tools.faults.cluster import Cluster
from tools.faults.verify import Counts, converge, count
from tools.faults.workload import Workload

__all__ = ["SCENARIOS", "Plan", "run_scenario"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Plan:
    """How big a run is: the short one lives in the test suite, the long one in make faults."""

    workers: int = 6
    users: int = 2
    stretch: float = 2.0  # how long a fault lasts
    pace: float = 0.05  # pause between a worker's requests
    crashes: int = 2  # server crashes (scenario 3)
    relay_kills: int = 1  # relay processes SIGKILLed mid-batch (scenario 4)
    crash_every: int = 7  # commits between two crashes
    copies: int = 4  # identical concurrent copies (scenario 5)
    converge_timeout: float = 60.0


Injector = Callable[[Cluster, asyncio.Event, Plan], Awaitable[str]]


@dataclass(frozen=True)
class Scenario:
    name: str
    inject: Injector
    server_env: dict[str, Any] = field(default_factory=dict)
    copies: int = 1
    embedded: bool = False  # the server runs its own (supervised) SecantusDB child
    stream: bool = False  # clients stream their turns (SSE) and walk away at random


async def _mongo_writes_fail(cluster: Cluster, stop: asyncio.Event, plan: Plan) -> str:
    await asyncio.sleep(plan.stretch / 4)
    writes = ["insert", "update"]
    await cluster.fail_point("alwaysOn", {"failCommands": writes, "errorCode": 8})
    await asyncio.sleep(plan.stretch / 2)
    await cluster.fail_point("alwaysOn", {"failCommands": writes, "closeConnection": True})
    await asyncio.sleep(plan.stretch / 2)
    await cluster.fail_point("off")
    await asyncio.sleep(plan.stretch / 4)
    stop.set()
    return f"insert/update failing {plan.stretch:g} s (errors, then dropped connections)"


async def _mongo_restart(cluster: Cluster, stop: asyncio.Event, plan: Plan) -> str:
    await asyncio.sleep(plan.stretch / 4)
    await cluster.mongo.kill()
    await asyncio.sleep(plan.stretch)
    await cluster.mongo.start()
    await asyncio.sleep(plan.stretch / 4)
    stop.set()
    return f"SecantusDB SIGKILLed, restarted after {plan.stretch:g} s"


async def _crash_after_commit(cluster: Cluster, stop: asyncio.Event, plan: Plan) -> str:
    crashes = 0
    fault = {"EV_FAULT_CRASH_AFTER_COMMIT_EVERY": plan.crash_every}
    while crashes < plan.crashes:
        assert cluster.server is not None
        try:
            code = await asyncio.wait_for(cluster.server.wait(), 60)
        except TimeoutError:
            break
        crashes += 1
        log.info("server exited with %s after a commit; restarting", code)
        await cluster.start_server(**(fault if crashes < plan.crashes else {}))
    await asyncio.sleep(plan.stretch)  # load on the restarted server too
    stop.set()
    return f"server os._exit(137) after every {plan.crash_every}th commit, {crashes}x, restarted"


async def _relay_killed(cluster: Cluster, stop: asyncio.Event, plan: Plan) -> str:
    await cluster.fail_point("alwaysOn", {"failCommands": ["insert", "update"], "errorCode": 8})
    await asyncio.sleep(plan.stretch)
    stop.set()
    await asyncio.sleep(0.5)  # let the last requests finish while MongoDB still fails
    await cluster.fail_point("off")
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(cluster.mongo.url)
    messages = client[cluster.mongo_database].chat_messages
    kills = 0
    try:
        for _ in range(plan.relay_kills):
            before = await messages.count_documents({})
            relay = await cluster.start_relay(EV_SYNC_BATCH_SIZE=3, EV_SYNC_GRACE_SECONDS=0)
            for _ in range(12_000):  # up to a minute for the process to start copying
                if await messages.count_documents({}) > before or relay.returncode is not None:
                    break
                await asyncio.sleep(0.005)
            await cluster.kill_relay()  # mid-batch: messages copied, synced_seq not moved yet
            kills += 1
    finally:
        await client.close()
    await cluster.start_relay(EV_SYNC_BATCH_SIZE=3, EV_SYNC_GRACE_SECONDS=0)
    return f"in-server relay off, MongoDB failing; relay process SIGKILLed mid-batch {kills}x"


async def _commit_fails(cluster: Cluster, stop: asyncio.Event, plan: Plan) -> str:
    await asyncio.sleep(plan.stretch / 4)
    await cluster.fail_commits(percent=30)
    await asyncio.sleep(plan.stretch)
    await cluster.heal_commits()
    await asyncio.sleep(plan.stretch / 2)
    stop.set()
    return f"~30 % of turn commits fail at COMMIT for {plan.stretch:g} s (60 s key lease)"


async def _mongo_data_loss(cluster: Cluster, stop: asyncio.Event, plan: Plan) -> str:
    await asyncio.sleep(plan.stretch / 2)
    await cluster.mongo.kill()
    shutil.rmtree(cluster.workdir / "mongo")  # the storage directory, gone
    await cluster.mongo.start()  # empty
    await asyncio.sleep(plan.stretch)
    stop.set()
    return "SecantusDB SIGKILLed, its storage dir deleted, restarted empty"


async def _secantus_child_killed(cluster: Cluster, stop: asyncio.Event, plan: Plan) -> str:
    kills = 0
    for _ in range(max(1, plan.crashes)):
        await asyncio.sleep(plan.stretch / 2)
        if await cluster.kill_secantus_child() is not None:
            kills += 1
        await asyncio.sleep(plan.stretch / 2)
    await asyncio.sleep(plan.stretch / 2)
    stop.set()
    return f"the server's embedded SecantusDB child SIGKILLed {kills}x (supervisor restarts it)"


async def _identical_concurrent(cluster: Cluster, stop: asyncio.Event, plan: Plan) -> str:
    await asyncio.sleep(plan.stretch)
    stop.set()
    return f"every request sent as {plan.copies} identical concurrent copies"


async def _stream_disconnects(cluster: Cluster, stop: asyncio.Event, plan: Plan) -> str:
    await asyncio.sleep(plan.stretch * 1.5)
    stop.set()
    return "streamed turns; clients walk away after 1-8 events, then retry or resume"


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario("mongo_writes_fail", _mongo_writes_fail),
        Scenario("mongo_restart", _mongo_restart),
        Scenario(
            "crash_after_commit",
            _crash_after_commit,
            server_env={"EV_FAULT_CRASH_AFTER_COMMIT_EVERY": 0},  # set per plan below
        ),
        Scenario("relay_killed", _relay_killed, server_env={"EV_SYNC_RELAY_ENABLED": "false"}),
        Scenario("identical_concurrent", _identical_concurrent, copies=0),  # plan.copies
        Scenario(
            "stream_disconnects",
            _stream_disconnects,
            server_env={"EV_OFFLINE_STREAM_DELAY_MS": 5},  # ~0.3 s a turn: walk away mid-way
            stream=True,
        ),
        # issue 9: a failed COMMIT frees its key at once (the lease is long here on purpose)
        Scenario("commit_fails", _commit_fails, server_env={"EV_IDEMPOTENCY_LEASE_SECONDS": 60}),
        # issue 9: lost MongoDB data is found by the loss check and repaired from SQL
        Scenario("mongo_data_loss", _mongo_data_loss, server_env={"EV_SYNC_CHECK_SECONDS": 1}),
        # issue 9: the supervised embedded SecantusDB; turns fail fast while it is down
        Scenario(
            "secantus_child_killed",
            _secantus_child_killed,
            server_env={"EV_SECANTUS_PROBE_SECONDS": 0.5},
            embedded=True,
        ),
    )
}


async def run_scenario(name: str, *, workdir: Path, plan: Plan, postgres_url: str | None) -> Counts:
    scenario = SCENARIOS[name]
    env = dict(scenario.server_env)
    if name == "crash_after_commit":
        env["EV_FAULT_CRASH_AFTER_COMMIT_EVERY"] = plan.crash_every
    counts = Counts(scenario=name)
    async with Cluster(
        workdir / name, name=name, postgres_url=postgres_url, embedded=scenario.embedded
    ) as cluster:
        # the set-up (users, agents, a first turn each) commits fewer turns than crash_every
        log.info("%s: starting the server", name)
        await cluster.start_server(**env)
        log.info("%s: server up", name)
        workload = Workload(
            cluster.base_url,
            tag=name,
            copies=scenario.copies or plan.copies,
            stream=scenario.stream,
        )
        try:
            # set up side by side (registration hashes a password: seconds on a busy machine)
            clients = list(await asyncio.gather(*(workload.client() for _ in range(plan.users))))
            stop = asyncio.Event()
            load = asyncio.gather(
                *(
                    workload.worker(clients[i % plan.users], stop=stop, pace=plan.pace)
                    for i in range(plan.workers)
                )
            )
            log.info("%s: load and faults", name)
            counts.faults = await scenario.inject(cluster, stop, plan)
            await load
            log.info("%s: healed, waiting for the stores to converge", name)
            snap, seconds = await converge(
                cluster.engine,
                cluster.mongo_url,
                cluster.mongo_database,
                timeout=plan.converge_timeout,
            )
            counts.converge_seconds = seconds
            log.info("%s: converged in %s s; counting", name, seconds)
            await count(
                counts,
                workload.ops,
                snap,
                engine=cluster.engine,
                mongo_url=cluster.mongo_url,
                database=cluster.mongo_database,
            )
        finally:
            await workload.close()
    return counts
