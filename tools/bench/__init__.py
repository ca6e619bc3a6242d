"""The benchmark behind ``make bench``: store round trips, latency against conversation length,
history pages, concurrency on a slow model, and a profile of the server's own code."""

from tools.bench.run import BenchPlan, run_bench

__all__ = ["BenchPlan", "run_bench"]
