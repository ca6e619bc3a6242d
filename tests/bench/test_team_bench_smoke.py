"""The team benchmark runs end to end, briefly (the real figures: make bench)."""

from __future__ import annotations

from employeevirtual.stores.mongo.secantus import SecantusServer
from tools.bench.team import measure


async def test_team_bench_smoke(secantus: SecantusServer) -> None:
    result = await measure(secantus.url, turns=2, rounds=1)
    for kind in ("plain", "two plain", "delegated"):
        assert result[kind]["p50"] > 0 and result[kind]["cpu"] > 0
    # warm-up (5) and measured (2) delegated turns, plus the first: each asked the delegate once
    assert result["delegated_runs"] == 8
