"""The benchmark's outputs: a Rich table on the console, JSON, and a PNG chart."""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from tools.bench.targets import (
    burst_bound_ms,
    cpu_allowed,
    mongo_bound,
    steady_cpu_ms,
    target_bounds,
    targets,
    workers_speedup_bound,
)

__all__ = ["print_results", "print_workers", "summarize_runs", "write_chart", "write_results"]


def _ms(value: float) -> str:
    return f"{value:.1f}" if value < 100 else f"{value:.0f}"


def _machine(row: dict[str, Any]) -> str:
    """Machine-wide CPU per turn and how busy the cores were ("-" in older results)."""
    machine = row["per_turn_ms"].get("machine_cpu")
    if machine is None:
        return "-"
    return f"{machine:.1f} ({row['machine_busy']:.0%} busy)"


def _client(row: dict[str, Any]) -> str:
    """The bench client's own CPU per turn ("-" in older results)."""
    client = row["per_turn_ms"].get("client_cpu")
    return "-" if client is None else f"{client:.2f}"


def _ratio(last: dict[str, Any], first: dict[str, Any], kind: str) -> float:
    return float(last[kind]["p50_ms"] / first[kind]["p50_ms"])


def _console() -> Console:
    return Console(width=160)


def print_results(results: dict[str, Any], console: Console | None = None) -> None:
    console = console or _console()
    console.print(f"[bold]EmployeeVirtual bench[/] on {results['backend']} — {results['server']}")

    trips = results["round_trips"]
    t = Table(title="1. Store round trips per turn (counted from the drivers)")
    for col in ("turn", "SQL statements", "SQL transactions", "MongoDB commands"):
        t.add_column(col, justify="right" if col != "turn" else "left")
    rows = [("first turn (new conversation)", trips["first_turn"])]
    rows.append(
        (
            f"steady state ({trips['steady_samples']} turns identical: "
            f"{trips['steady_all_identical']})",
            trips["steady"],
        )
    )
    for length, entry in trips["by_length"].items():
        rows.append(
            (f"at {int(length):,} msgs, first after start", entry["first_turn_after_restart"])
        )
        rows.append((f"at {int(length):,} msgs, steady", entry["steady"]))
    for name, r in rows:
        t.add_row(
            name,
            f"{r['sql_statements']:g}",
            f"{r['sql_transactions']:g}",
            f"{r['mongo_commands']:g}",
        )
    console.print(t)
    batched = trips.get("steady_batched_analytics")
    if batched:
        per_turn = batched["inserts"] / trips["steady_samples"]
        console.print(
            f"MongoDB commands above are the requests' own; the runs' chat_analytics documents "
            f"are batched: the {trips['steady_samples']} steady turns' {batched['documents']} "
            f"documents took {batched['inserts']} insert_many outside them (one per "
            f"{batched['flush_seconds']:g} s flush: {per_turn:.2f} of a command per turn here, "
            "fewer at a higher turn rate)"
        )
    passes = {
        length: entry["summary_passes"]
        for length, entry in trips["by_length"].items()
        if "summary_passes" in entry
    }
    if passes:
        console.print(
            "summary passes started by those two turns: "
            + ", ".join(f"at {int(length):,} msgs {n}" for length, n in passes.items())
        )
    summaries = results["profile"].get("summaries") or {}
    if summaries.get("passes"):
        console.print(
            f"summary passes in the {results['profile']['turns']} profiled turns: "
            f"{summaries['passes']}, reading {summaries['read'] / summaries['passes']:.1f} "
            f"messages each, {summaries['versions']} versions"
        )

    floor = results["floor"]["total_ms"]
    f = results["floor"]
    console.print(
        f"floor per turn (fresh process, {f['loop']} loop, {f['rounds']} rounds): "
        f"bare Agent.run with {f['history_messages']} history messages {f['agent_ms']:.2f} ms + "
        f"raw SQL ({f['sql_statements']} statements, {f['sql_transactions']} transaction) "
        f"{f['sql_ms']:.2f} ms + raw MongoDB ({f['mongo_commands']} commands) "
        f"{f['mongo_ms']:.2f} ms = [bold]{floor:.2f} ms[/]"
        + (
            " (before / after the steady step: "
            + " / ".join(f"{h['total_ms']:.2f}" for h in f["halves"])
            + " ms)"
            if f.get("halves")
            else ""
        )
    )
    t = Table(
        title="2-3. Latency by conversation length (ms; sequential, one client; plain server, "
        "CPU read from /proc)"
    )
    for col in (
        "messages",
        "turn p50",
        "p95",
        "p99",
        "turns/s",
        "CPU ms/turn",
        "x floor",
        "newest page p50",
        "p99",
        "deep page p50",
        "p99",
    ):
        t.add_column(col, justify="right")
    for row in results["lengths"]:
        turn, newest, deep = row["turn"], row["history_newest"], row["history_deep"]
        t.add_row(
            f"{row['messages_before']:,}",
            _ms(turn["p50_ms"]),
            _ms(turn["p95_ms"]),
            _ms(turn["p99_ms"]),
            f"{turn['throughput_per_s']:.0f}",
            f"{row['server_cpu_ms_per_turn']:.2f}",
            f"{row['server_cpu_ms_per_turn'] / floor:.2f}x",
            _ms(newest["p50_ms"]),
            _ms(newest["p99_ms"]),
            _ms(deep["p50_ms"]),
            _ms(deep["p99_ms"]),
        )
    console.print(t)
    lengths = results["lengths"]
    if len(lengths) > 1:
        first, last = lengths[0], lengths[-1]
        console.print(
            f"ratio {last['messages_before']:,} vs {first['messages_before']:,} messages (p50): "
            f"turn {last['turn']['p50_ms'] / first['turn']['p50_ms']:.2f}x, "
            f"newest page {_ratio(last, first, 'history_newest'):.2f}x, "
            f"deep page {_ratio(last, first, 'history_deep'):.2f}x"
        )

    t = Table(
        title=f"4. Concurrency on a {results['plan']['slow_seconds']:g} s model (plain server, "
        "one worker)"
    )
    for col in (
        "in flight",
        "turns/s",
        "p50 ms",
        "p99 ms",
        "errors",
        "server CPU ms/turn",
        "CPU-allowed turns/s",
        "achieved / allowed",
        "client CPU ms/turn",
        "machine CPU ms/turn",
        "SecantusDB CPU ms/turn",
    ):
        t.add_column(col, justify="right")
    for row in results["concurrency"]:
        per = row["per_turn_ms"]
        allowed = cpu_allowed(results, row["in_flight"])
        t.add_row(
            f"{row['in_flight']:,}",
            f"{row.get('throughput_per_s', 0):.0f}",
            _ms(row["p50_ms"]),
            _ms(row["p99_ms"]),
            str(row["errors"]),
            f"{per['server_cpu']:.2f}",
            f"{allowed:.0f}",
            f"{row.get('throughput_per_s', 0) / allowed:.0%}",
            "-" if "client_cpu" not in per else f"{per['client_cpu']:.1f}",
            _machine(row),
            "-" if "mongo_cpu" not in per else f"{per['mongo_cpu']:.2f}",
        )
    console.print(t)
    top = max(results["concurrency"], key=lambda row: row["in_flight"], default=None)
    bound = None if top is None else mongo_bound(top)
    if top is not None and bound is not None:
        console.print(
            f"SecantusDB (the embedded MongoDB, one Python process: one core at most) at "
            f"{top['per_turn_ms']['mongo_cpu']:.2f} ms of CPU per turn serves at most "
            f"{bound:.0f} turns/s; {top['in_flight']:,} in flight reached "
            f"{top.get('throughput_per_s', 0) / bound:.0%} of that"
        )
    for row in results["concurrency"]:
        _print_model_starts(console, f"{row['in_flight']:,} in flight", row)

    prof = results["profile"]
    t = Table(
        title=f"5. Server's own code in {prof['turns']} steady-state turns "
        f"(pyinstrument; stores, model and idle excluded; "
        f"CPU {prof['server_cpu_ms_per_turn']:.2f} ms/turn under the profiler)"
    )
    t.add_column("entry (self time)")
    t.add_column("ms/turn", justify="right")
    for entry in prof["top_own"]:
        t.add_row(entry["entry"], f"{entry['seconds'] / prof['turns'] * 1000:.3f}")
    console.print(t)
    kinds = ", ".join(
        f"{k} {v / prof['turns'] * 1000:.2f}" for k, v in sorted(prof["by_kind"].items())
    )
    packages = ", ".join(
        f"{k} {v / prof['turns'] * 1000:.2f}" for k, v in list(prof["own_by_package"].items())[:8]
    )
    console.print(f"sampled ms/turn by kind: {kinds}")
    console.print(f"own ms/turn by package: {packages}")
    print_workers(results, console)
    print_targets(results, console)


def _print_model_starts(console: Console, name: str, row: dict[str, Any]) -> None:
    """When a burst's turns reached the model (``run._model_starts``)."""
    starts = row.get("model_starts")
    if not starts:
        return
    console.print(
        f"{name}: {starts['n']} model calls began {starts['first_s']:.2f}-"
        f"{starts['last_s']:.2f} s after the burst was sent (median {starts['p50_s']:.2f} s); "
        f"before any model answered, the machine was busy "
        f"{starts['machine_cpu_before_answers_s']:.2f} CPU-seconds"
    )


def _bound(results: dict[str, Any], row: dict[str, Any]) -> str:
    bound = burst_bound_ms(results, row)
    return "-" if bound is None else _ms(bound)


def print_workers(results: dict[str, Any], console: Console) -> None:
    workers = results.get("workers")
    if not isinstance(workers, list) or not workers:
        if workers:
            console.print(f"7. Workers: {workers}")
        return
    t = Table(title="7. Worker processes (plain server; PostgreSQL)")
    for col in (
        "workers",
        "instant: in flight",
        "turns/s",
        "p99 ms",
        "errors",
        "CPU ms/turn",
        "client CPU ms/turn",
        "machine CPU ms/turn",
    ):
        t.add_column(col, justify="right")
    for col in (
        "slow: in flight",
        "turns/s",
        "p99 ms",
        "errors",
        "machine CPU ms/turn",
        "machine's bound ms",
    ):
        t.add_column(col, justify="right")
    for row in workers:
        fast, slow = row["instant"], row["slow"]
        t.add_row(
            str(row["workers"]),
            str(fast["in_flight"]),
            f"{fast.get('throughput_per_s', 0):.0f}",
            _ms(fast["p99_ms"]),
            str(fast["errors"]),
            f"{fast['per_turn_ms']['server_cpu']:.2f}",
            _client(fast),
            _machine(fast),
            str(slow["in_flight"]),
            f"{slow.get('throughput_per_s', 0):.0f}",
            _ms(slow["p99_ms"]),
            str(slow["errors"]),
            _machine(slow),
            _bound(results, slow),
        )
    console.print(t)
    console.print(
        "machine CPU: every process on the machine (server, this client, the stores) per turn; "
        "machine's bound: the earliest the last turn of a burst can end on these cores"
    )
    for row in workers:
        _print_model_starts(console, f"{row['workers']} worker(s), slow burst", row["slow"])
    speedup = workers_speedup_bound(results, workers[0])
    if speedup is not None:
        fast = workers[0]["instant"]
        console.print(
            f"at one worker's {fast['per_turn_ms']['machine_cpu']:.1f} ms of machine CPU per "
            f"instant turn, {results['machine']['cpus']} cores run at most "
            f"{speedup * fast['throughput_per_s']:.0f} turns/s: {speedup:.2f}x one worker's "
            f"{fast['throughput_per_s']:.0f}, the most any number of workers can give"
        )
    before = [
        f"{row['instant']['machine_busy_before']:.0%}"
        for row in workers
        if row["instant"].get("machine_busy_before") is not None
    ]
    if before:
        console.print(
            "the cores busy in the second before each instant run, no turn running: "
            + " / ".join(before)
            + " (other load, counted in the run's machine CPU per turn too)"
        )


def print_targets(results: dict[str, Any], console: Console) -> None:
    t = Table(title="Targets (issue 17)")
    t.add_column("target")
    t.add_column("measured", justify="right")
    t.add_column("met", justify="center")
    for name, (_, text, met) in targets(results).items():
        t.add_row(name, text, "yes" if met else "[red]no[/]")
    console.print(t)


def _pair(d: dict[str, float]) -> str:
    return f"{d['p50']:.2f} / {d['p99']:.2f}"


def print_streams(results: dict[str, Any], console: Console | None = None) -> None:
    streams = results.get("streams")
    if not streams:
        return
    console = console or _console()
    o, c, r, m = streams["overhead"], streams["cpu"], streams["resume"], streams["many_open"]
    t = Table(title="6. Live (streamed) turns")
    t.add_column("figure")
    t.add_column("value", justify="right")
    t.add_row("request -> `turn` event, p50 / p99 (ms)", _pair(o["to_turn_ms"]))
    t.add_row("request -> first `delta`, p50 / p99 (ms)", _pair(o["to_first_delta_ms"]))
    t.add_row("model's own time to its first chunk (ms)", f"{o['model_first_chunk_ms']:.3f}")
    t.add_row(
        "our overhead to the first `delta`, p50 / p99", _pair(o["overhead_to_first_delta_ms"])
    )
    if "to_first_delta_ms" in c:
        t.add_row(
            "  the same, plain server (production loop, no meters), p50 / p99",
            _pair({k: v - o["model_first_chunk_ms"] for k, v in c["to_first_delta_ms"].items()}),
        )
    t.add_row(
        "server CPU per turn, streamed / not (ms)",
        f"{c['streamed_ms']:.1f} / {c['plain_ms']:.1f} = {c['ratio']:.2f}x",
    )
    s = results["floor"].get("stream")
    if s:
        t.add_row(
            "  Pydantic AI alone, bare Agent.run streamed / not (ms)",
            f"{s['streamed_ms']:.2f} / {s['plain_ms']:.2f} = {s['ratio']:.2f}x",
        )
        extra = c["streamed_ms"] - c["plain_ms"] - (s["streamed_ms"] - s["plain_ms"])
        t.add_row("  ours on top of Pydantic AI's streaming (ms)", f"{extra:.2f}")
    t.add_row("resume to `done`, p50 / p99 (ms)", f"{r['p50_ms']:.1f} / {r['p99_ms']:.1f}")
    t.add_row(f"{m['streams']:,} streams at once: errors", str(m["errors"]))
    t.add_row("  peak turns live at once", f"{m['peak_live_turns']:,}")
    t.add_row("  memory per open stream (kB)", f"{m['kb_per_open_stream']:.1f}")
    t.add_row("  wall (s)", f"{m['wall_s']:.1f}")
    console.print(t)


def write_chart(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = results["lengths"]
    x = [r["messages_before"] for r in rows]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for key, label in (("p50_ms", "p50"), ("p95_ms", "p95"), ("p99_ms", "p99")):
        axes[0].plot(x, [r["turn"][key] for r in rows], marker="o", label=f"turn {label}")
    axes[0].set_title("Chat turn (instant model)")
    for kind, style in (("history_newest", "-"), ("history_deep", "--")):
        for key, label in (("p50_ms", "p50"), ("p99_ms", "p99")):
            axes[1].plot(
                x,
                [r[kind][key] for r in rows],
                style,
                marker="o",
                label=f"{kind.split('_')[1]} page {label}",
            )
    axes[1].set_title("History page (limit 50)")
    for ax in axes:
        ax.set_xscale("log")
        ax.set_xlabel("messages already in the conversation")
        ax.set_ylabel("latency (ms)")
        ax.set_ylim(bottom=0)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"EmployeeVirtual latency vs conversation length — {results['backend']}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_results(
    results: dict[str, Any], out_dir: Path, *, console: Console | None = None
) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = results["started_at"].replace(":", "").replace("-", "")[:15]
    stem = f"bench-{results['backend']}-{stamp}"
    json_path = out_dir / f"{stem}.json"
    json_path.write_text(json.dumps(results, indent=2, default=str))
    write_chart(results, out_dir / f"{stem}.png")
    print_results(results, console)
    print_streams(results, console)
    (console or _console()).print(f"wrote {json_path} and {stem}.png")
    return json_path


def _figures(results: dict[str, Any]) -> dict[str, float]:
    out: dict[str, float] = {}
    trips = results["round_trips"]
    for turn in ("first_turn", "steady"):
        for key, value in trips[turn].items():
            out[f"{turn}.{key}"] = value
    for row in results["lengths"]:
        n = row["messages_before"]
        out[f"turn p50 ms @{n}"] = row["turn"]["p50_ms"]
        out[f"turn p99 ms @{n}"] = row["turn"]["p99_ms"]
        out[f"turns/s @{n}"] = row["turn"]["throughput_per_s"]
        out[f"CPU ms/turn @{n}"] = row["server_cpu_ms_per_turn"]
        out[f"newest page p50 ms @{n}"] = row["history_newest"]["p50_ms"]
        out[f"deep page p50 ms @{n}"] = row["history_deep"]["p50_ms"]
    for row in results["concurrency"]:
        c = row["in_flight"]
        out[f"conc {c}: turns/s"] = row.get("throughput_per_s", 0.0)
        out[f"conc {c}: p99 ms"] = row["p99_ms"]
        out[f"conc {c}: errors"] = row["errors"]
        out[f"conc {c}: server CPU ms/turn"] = row["per_turn_ms"]["server_cpu"]
        bound = mongo_bound(row)
        if bound is not None:
            out[f"conc {c}: SecantusDB CPU ms/turn"] = row["per_turn_ms"]["mongo_cpu"]
            out[f"conc {c}: turns/s / SecantusDB's one-core bound"] = (
                row.get("throughput_per_s", 0.0) / bound
            )
    out["profile CPU ms/turn"] = results["profile"]["server_cpu_ms_per_turn"]
    for key in ("agent_ms", "sql_ms", "mongo_ms", "total_ms"):
        out[f"floor {key}"] = results["floor"][key]
    out["steady CPU ms/turn"] = steady_cpu_ms(results)
    streams = results.get("streams")
    if streams and "cpu" in streams:
        o, c = streams["overhead"], streams["cpu"]
        out["stream: overhead to first delta p50 ms"] = o["overhead_to_first_delta_ms"]["p50"]
        if "to_first_delta_ms" in c:
            plain = c["to_first_delta_ms"]["p50"] - o["model_first_chunk_ms"]
            out["stream: overhead to first delta p50 ms (plain server)"] = plain
        out["stream: CPU streamed / plain"] = c["ratio"]
        out["stream: CPU ms streamed - plain"] = c["streamed_ms"] - c["plain_ms"]
        s = results["floor"].get("stream")
        if s:
            out["stream: Pydantic AI alone streamed / plain"] = s["ratio"]
            out["stream: Pydantic AI alone ms streamed - plain"] = s["streamed_ms"] - s["plain_ms"]
    workers = results.get("workers")
    if isinstance(workers, list):
        for row in workers:
            fast = row["instant"]
            out[f"workers {row['workers']}: instant turns/s"] = fast.get("throughput_per_s", 0.0)
            machine = fast["per_turn_ms"].get("machine_cpu")
            if machine is not None:
                out[f"workers {row['workers']}: instant machine CPU ms/turn"] = machine
            before = fast.get("machine_busy_before")
            if before is not None:
                out[f"workers {row['workers']}: cores busy before, no turn running"] = before
    bounds = target_bounds(results)
    for name, (value, _, _) in targets(results).items():
        out[f"target: {name}"] = value
        if name in bounds:
            out[f"target: {name}: this machine's bound"] = bounds[name]
    return out


def summarize_runs(paths: Sequence[Path], console: Console | None = None) -> dict[str, Any]:
    """Median [min-max] of the headline figures over several result files."""
    runs = [_figures(json.loads(p.read_text())) for p in paths]
    keys = [k for k in runs[0] if all(k in r for r in runs)]
    summary = {
        k: {
            "median": statistics.median(r[k] for r in runs),
            "min": min(r[k] for r in runs),
            "max": max(r[k] for r in runs),
        }
        for k in keys
    }
    t = Table(title=f"median [min-max] over {len(runs)} runs")
    t.add_column("figure")
    t.add_column("median", justify="right")
    t.add_column("min-max", justify="right")
    for k, v in summary.items():
        t.add_row(k, f"{v['median']:.2f}", f"{v['min']:.2f} - {v['max']:.2f}")
    (console or _console()).print(t)
    return summary
