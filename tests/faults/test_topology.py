"""Issue 17's several-hosts topology on this machine (tools/faults/topology.py): two API
processes, one ``employeevirtual worker``, PostgreSQL, Redis and one SecantusDB; the fault
workload's clients spread over both API processes, and an API process SIGKILLed mid-run.
The long run: ``make test-slow`` or ``make faults-topology``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tools.faults.topology import LONG, RETRY_WINDOW_SECONDS, SHORT, TopologyPlan, run_topology

POSTGRES_URL = os.environ.get("EV_TEST_POSTGRES_URL")
REDIS_URL = os.environ.get("EV_TEST_REDIS_URL")

pytestmark = [
    pytest.mark.redis,
    pytest.mark.skipif(not (POSTGRES_URL and REDIS_URL), reason="needs PostgreSQL and Redis"),
]


async def test_an_api_process_killed_mid_run_loses_and_doubles_nothing(tmp_path: Path) -> None:
    await _nothing_lost_nothing_doubled(SHORT, tmp_path)


@pytest.mark.slow
async def test_long_run_api_processes_killed_and_restarted(tmp_path: Path) -> None:
    """24 clients, three kills alternating between the processes, each restarted."""
    await _nothing_lost_nothing_doubled(LONG, tmp_path)


async def _nothing_lost_nothing_doubled(plan: TopologyPlan, tmp_path: Path) -> None:
    assert POSTGRES_URL is not None and REDIS_URL is not None
    result = await run_topology(
        plan, workdir=tmp_path, postgres_url=POSTGRES_URL, redis_url=REDIS_URL
    )
    c = result.counts
    print(result)
    assert result.kills == plan.kills
    # the load really was spread: both processes answered, and clients of the killed one moved on
    assert result.served.get(0, 0) > 0 and result.served.get(1, 0) > 0, result
    assert result.failovers > 0, result
    assert c.acknowledged > 0, c
    assert c.lost == 0, c
    assert c.duplicated == 0, c
    assert c.unexpected == 0, c
    assert c.converge_seconds is not None and c.stores_equal, c
    assert c.gave_up == 0, c
    assert c.blocked_max <= RETRY_WINDOW_SECONDS, c
