"""A short run of the memory bench (``tools/bench/memory.py``): with memory on, a turn costs the
same store round trips at 10 and at 300 messages, the context sent to the model stays bounded,
and the summary's catch-up and steady updates run in the background without a failure. No
timings asserted (they are the bench's to report)."""

from __future__ import annotations

from employeevirtual.settings import Settings
from tools.bench.memory import MemoryPlan, print_memory, run_memory_bench


async def test_memory_bench_smoke(settings: Settings) -> None:
    plan = MemoryPlan(lengths=(10, 300), turns=4, steady_samples=2, memories=12)
    results = await run_memory_bench(settings, plan, log=lambda *_: None)
    print_memory(results, log=lambda *_: None)
    short, long = results["lengths"]
    assert results["round_trips_flat"], (short["round_trips_per_turn"], long)
    assert short["round_trips_all_identical"] and long["round_trips_all_identical"]
    trips = long["round_trips_per_turn"]
    # the resolve read, the memory read (memories + summary in one statement), the turn's
    # UPDATE + INSERT (in one transaction; on PostgreSQL one statement on its own); MongoDB:
    # messages, conversation (the run's analytics batched with the acks)
    assert trips["sql_statements"] <= 5 and trips["sql_transactions"] <= 1, trips
    assert trips["mongo_commands"] <= 2, trips
    # the window holds 20 messages at any length; the summary and memories are bounded
    window = results["window"]
    assert long["context_sent"]["messages_max"] <= window + 1
    bound = window * 200 + results["summary_max_chars"] + 12 * 120 + 2000
    assert long["context_sent"]["chars_max"] <= bound, long["context_sent"]
    catch_up = long["summary_catch_up"]
    assert catch_up["versions"] >= 1 and catch_up["messages"] == 300 + 2 - window
    assert short["summary_catch_up"]["versions"] == 0  # 10 messages never leave the window
    assert long["summary_per_turn"]["failures"] == 0
