"""A short run of the knowledge bench: the engine measured at two small sizes with the ANN index
built at the larger one, recall@10 computed against exact search. Only structure is asserted
(timings belong to ``make bench``)."""

from __future__ import annotations

from pathlib import Path

from tools.bench.knowledge import bench_engine


async def test_knowledge_engine_bench_runs(tmp_path: Path) -> None:
    result = await bench_engine(tmp_path / "engine", [300, 600], queries=5, recall_queries=5)
    assert set(result["sizes"]) == {"300", "600"}
    assert result["sizes"]["300"]["ann_index"] is False
    assert result["sizes"]["600"]["ann_index"] is True
    for size in result["sizes"].values():
        assert set(size["query"]) == {"hybrid", "lexical", "vector"}
    assert result["ingest"]["chunks"] == 600 and result["ingest"]["chunks_per_s"] > 0
    recall = result["ann_recall_at_10"]
    assert recall["ann_index"] is True and 0.0 <= recall["recall"] <= 1.0
