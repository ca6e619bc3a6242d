"""The fault-injection suite, short: real server, SecantusDB and SQL processes, broken for real.

PostgreSQL when EV_TEST_POSTGRES_URL is set, SQLite otherwise. The long run, with the same
checks: ``make test-slow`` (pytest ``-m slow``) or ``make faults`` (the table alone).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from rich.console import Console

from tools.faults.__main__ import LONG, SHORT, run, table
from tools.faults.scenarios import SCENARIOS, Plan

POSTGRES_URL = os.environ.get("EV_TEST_POSTGRES_URL")


async def test_nothing_lost_nothing_doubled(tmp_path: Path) -> None:
    """Every scenario: something acknowledged, nothing lost, nothing duplicated, nothing
    unexpected, and both stores holding the same messages once healed."""
    await _nothing_lost_nothing_doubled(SHORT, tmp_path)


@pytest.mark.slow
async def test_long_run_nothing_lost_nothing_doubled(tmp_path: Path) -> None:
    """The same checks on the long run: 24 clients, longer faults, more crashes and kills."""
    await _nothing_lost_nothing_doubled(LONG, tmp_path)


async def _nothing_lost_nothing_doubled(plan: Plan, tmp_path: Path) -> None:
    results = await run(list(SCENARIOS), plan, workdir=tmp_path, postgres_url=POSTGRES_URL, lanes=2)
    Console(width=160).print(table(results, "PostgreSQL" if POSTGRES_URL else "SQLite"))
    for counts in results:
        print(counts.scenario, "; ".join(counts.notes))
    assert [c.scenario for c in results] == list(SCENARIOS)
    for counts in results:
        assert counts.acknowledged > 0, counts
        assert counts.lost == 0, counts
        assert counts.duplicated == 0, counts
        assert counts.unexpected == 0, counts
        assert counts.converge_seconds is not None, counts
        assert counts.stores_equal, counts
    assert next(c for c in results if c.scenario == "crash_after_commit").retried > 0
    assert next(c for c in results if c.scenario == "identical_concurrent").retried > 0
    # issue 9: commits failed, and their retries ran at once instead of waiting out the key's
    # 60 s lease (every client got its answer; none was kept near the lease)
    failed_commits = next(c for c in results if c.scenario == "commit_fails")
    assert failed_commits.retried > 0
    assert failed_commits.gave_up == 0
    assert failed_commits.blocked_max < 30, failed_commits
