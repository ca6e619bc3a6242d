"""The export benchmark runs end to end on a small person (the real figures: make bench)."""

from __future__ import annotations

from tools.bench.export import _one


async def test_export_bench_smoke() -> None:
    result = await _one(200)
    assert result["exported_messages"] == 200
    assert result["usage_documents"] == 100
    assert result["zip_mib"] >= 0 and result["export_seconds"] > 0
