"""Issue 17's targets from a bench result: the CPU allowed, this machine's bounds and the
targets table's rows (``report`` prints them)."""

from __future__ import annotations

import statistics
from typing import Any

__all__ = [
    "burst_bound_ms",
    "cpu_allowed",
    "mongo_bound",
    "steady_cpu_ms",
    "target_bounds",
    "targets",
    "workers_speedup_bound",
]


def steady_cpu_ms(results: dict[str, Any]) -> float:
    """CPU per steady turn: the median over the lengths (plain server)."""
    return float(statistics.median(row["server_cpu_ms_per_turn"] for row in results["lengths"]))


def cpu_allowed(results: dict[str, Any], in_flight: int, cores: float = 1.0) -> float:
    """Turns/s the measured CPU per turn allows on ``cores``, capped by what ``in_flight``
    turns of the model's length can give at all."""
    by_cpu = cores * 1000 / steady_cpu_ms(results)
    by_model = in_flight / float(results["plan"]["slow_seconds"])
    return min(by_cpu, by_model)


def mongo_bound(row: dict[str, Any]) -> float | None:
    """Turns/s the embedded SecantusDB allows at its measured CPU per turn: it is one Python
    process, so it runs on one core at most (None with another MongoDB)."""
    mongo = row["per_turn_ms"].get("mongo_cpu")
    if not mongo:
        return None
    return 1000 / float(mongo)


def burst_bound_ms(results: dict[str, Any], row: dict[str, Any]) -> float | None:
    """The earliest the last of ``in_flight`` turns sent at once can finish on this machine:
    all their CPU (every process's: server, client, stores) must run on the machine's cores,
    and no turn ends before the model's own time. Where the model's calls were traced
    (``model_starts``), also: the last turn's model call cannot begin before the work the
    machine did ahead of any model answer (every turn's way to its model call) is done on the
    cores, and then takes the model's time. None for results without machine CPU."""
    machine = row["per_turn_ms"].get("machine_cpu")
    if machine is None:
        return None
    cores = float(results["machine"]["cpus"])
    by_model = 1000 * float(results["plan"]["slow_seconds"])
    by_cpu = int(row["in_flight"]) * float(machine) / cores
    starts = row.get("model_starts")
    if not starts:
        return max(by_model, by_cpu)
    by_way_in = by_model + 1000 * float(starts["machine_cpu_before_answers_s"]) / cores
    return max(by_model, by_cpu, by_way_in)


def workers_speedup_bound(results: dict[str, Any], one: dict[str, Any]) -> float | None:
    """The most any number of workers can multiply one worker's instant turns/s on this
    machine. On one worker (``one``) a turn costs every process on the machine (server, stores,
    client) M ms of CPU; C cores run at most C * 1000 / M such turns a second whatever serves
    them, so the speedup over one worker's T1 turns/s is at most (C * 1000 / M) / T1, which is
    1 / the share of the cores one worker kept busy. It holds while a turn costs the machine no
    less on more workers (the workers table shows both). None for results without machine CPU."""
    fast = one["instant"]
    machine = fast["per_turn_ms"].get("machine_cpu")
    if machine is None:
        return None
    cores = float(results["machine"]["cpus"])
    return cores * 1000 / float(machine) / float(fast["throughput_per_s"])


def _workers_pair(results: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]] | None:
    workers = results.get("workers")
    if isinstance(workers, list) and len(workers) > 1:
        return workers[0], workers[1]
    return None


def _speedup_target(two: dict[str, Any]) -> str:
    return f"{two['workers']} workers vs 1, instant turns/s"


def _burst_target(two: dict[str, Any]) -> str:
    return f"{two['slow']['in_flight']} slow turns on {two['workers']} workers, p99"


# the cores' share busy with no turn running above which the machine CPU per turn is not the
# turns' alone (a quiet machine: PostgreSQL, Redis and SecantusDB idling, a few %)
OTHER_LOAD = 0.1


def _speedup_bound(bound: float | None, speedup: float, busy_before: float | None) -> str:
    if bound is None:
        return ""
    notes = [f"this machine's bound {bound:.2f}x"]
    if speedup > bound:
        # possible only if a turn cost the machine less on more workers than on one (other load
        # during one worker's run, say)
        notes.append("exceeded: a turn cost the machine less")
    if busy_before is not None and busy_before >= OTHER_LOAD:
        notes.append(f"other load: cores {busy_before:.0%} busy before")
    return f" ({', '.join(notes)})"


def target_bounds(results: dict[str, Any]) -> dict[str, float]:
    """This machine's bound on a target's figure, by the target's name (the targets that have
    one, in results that hold what it takes)."""
    pair = _workers_pair(results)
    if pair is None:
        return {}
    one, two = pair
    out: dict[str, float] = {}
    speedup = workers_speedup_bound(results, one)
    if speedup is not None:
        out[_speedup_target(two)] = speedup
    burst = burst_bound_ms(results, two["slow"])
    if burst is not None:
        out[_burst_target(two)] = burst
    return out


def targets(results: dict[str, Any]) -> dict[str, tuple[float, str, bool]]:
    """Issue 17's targets: figure, how it reads, met."""
    out: dict[str, tuple[float, str, bool]] = {}
    ratio = steady_cpu_ms(results) / results["floor"]["total_ms"]
    out["CPU per steady turn / floor"] = (ratio, f"{ratio:.2f}x <= 2.5x", ratio <= 2.5)
    pair = _workers_pair(results)
    if pair is not None:
        one, two = pair
        bounds = target_bounds(results)
        name = _speedup_target(two)
        speedup = two["instant"]["throughput_per_s"] / one["instant"]["throughput_per_s"]
        out[name] = (
            speedup,
            f"{speedup:.2f}x >= 1.6x"
            + _speedup_bound(bounds.get(name), speedup, one["instant"].get("machine_busy_before")),
            speedup >= 1.6,
        )
        name = _burst_target(two)
        p99 = two["slow"]["p99_ms"]
        out[name] = (
            p99,
            f"{p99:.0f} ms <= {1500 * results['plan']['slow_seconds']:.0f} ms"
            + (f" (this machine's bound {bounds[name]:.0f} ms)" if name in bounds else ""),
            p99 <= 1500 * results["plan"]["slow_seconds"] and two["slow"]["errors"] == 0,
        )
    if not results["concurrency"]:
        return out
    top = max(results["concurrency"], key=lambda row: row["in_flight"])
    share = top.get("throughput_per_s", 0) / cpu_allowed(results, top["in_flight"])
    bound = mongo_bound(top)
    out[f"{top['in_flight']} slow turns in flight: achieved / CPU-allowed, errors"] = (
        share,
        f"{share:.0%} >= 80%, {top['errors']} errors"
        + (
            ""
            if bound is None
            else f" (SecantusDB's one core allows {bound:.0f} turns/s: "
            f"{top.get('throughput_per_s', 0) / bound:.0%} of it)"
        ),
        share >= 0.8 and top["errors"] == 0,
    )
    lengths = results["lengths"]
    if len(lengths) > 1:
        first, last = lengths[0], lengths[-1]
        for kind in ("turn", "history_newest", "history_deep"):
            r = last[kind]["p50_ms"] / first[kind]["p50_ms"]
            out[f"{kind} p50 at {last['messages_before']:,} vs {first['messages_before']:,}"] = (
                r,
                f"{r:.2f}x <= 1.25x",
                r <= 1.25,
            )
    return out
