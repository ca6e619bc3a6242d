"""The fault-injection suite, short: real server, SecantusDB and SQL processes, broken for real.

PostgreSQL when EV_TEST_POSTGRES_URL is set, SQLite otherwise. The long run: ``make faults``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from rich.console import Console

from employeevirtual.faults.__main__ import SHORT, table
from employeevirtual.faults.scenarios import SCENARIOS, run_scenario

POSTGRES_URL = os.environ.get("EV_TEST_POSTGRES_URL")


@pytest.mark.parametrize("name", list(SCENARIOS))
async def test_nothing_lost_nothing_doubled(name: str, tmp_path: Path) -> None:
    counts = await run_scenario(name, workdir=tmp_path, plan=SHORT, postgres_url=POSTGRES_URL)
    Console(width=160).print(table([counts], "PostgreSQL" if POSTGRES_URL else "SQLite"))
    print("; ".join(counts.notes))
    assert counts.attempted > 0
    assert counts.acknowledged > 0
    assert counts.lost == 0
    assert counts.duplicated == 0
    assert counts.unexpected == 0
    assert counts.converge_seconds is not None
    assert counts.stores_equal
