"""A short run of the MCP bench (one turn per agent): every configuration answers through its
tool and is measured. Only structure is asserted (timings belong to ``make bench``)."""

from __future__ import annotations

from employeevirtual.stores.mongo.secantus import SecantusServer
from tools.bench.mcp import CONFIGS, bench


async def test_mcp_bench_runs(secantus: SecantusServer) -> None:
    result = await bench(secantus.url, turns=1, rounds=1)
    assert set(result["configs"]) == set(CONFIGS)
    for got in result["configs"].values():
        assert got["latency_p50_ms"] > 0 and got["cpu_ms_per_turn"] >= 0
    for name in ("MCP over HTTP", "MCP over stdio"):
        assert "added_latency_p50_ms" in result["configs"][name]
