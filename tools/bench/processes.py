"""Whose CPU a bench step's machine CPU was: every process on the machine by kind.

A snapshot reads each process's user + system CPU from /proc (psutil) and files it under the
server (the bench server and its workers), SecantusDB, PostgreSQL, Redis, this load client or
"other". Two snapshots give each kind's CPU over the window, process by process (one started
inside the window counts from zero). A process that ended inside the window (a PostgreSQL
backend of a connection that opened and closed) took its CPU with it: set against the machine's
busy CPU over the same window, that and the kernel's own work (interrupts) are what no kind
holds ("exited or kernel").
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import psutil

__all__ = ["KINDS", "CpuSnapshot", "connections_on", "cpu_by_kind"]

KINDS = ("server", "secantusdb", "postgresql", "redis", "load client", "other")


def _kind(proc: psutil.Process, server: set[int], secantus: int | None) -> str:
    if proc.pid in server:
        return "server"
    if proc.pid == os.getpid():
        return "load client"
    if secantus is not None and proc.pid == secantus:
        return "secantusdb"
    try:
        name = proc.name()
    except psutil.Error:
        return "other"
    if name.startswith("postgres"):
        return "postgresql"
    if name.startswith("redis"):
        return "redis"
    return "other"


@dataclass(frozen=True)
class CpuSnapshot:
    """(kind, CPU seconds so far) of every live process, by pid and start time (a pid reused
    inside the window is another process)."""

    processes: dict[tuple[int, float], tuple[str, float]]

    def since(self, before: CpuSnapshot) -> dict[str, float]:
        """Each kind's CPU seconds from ``before`` to this snapshot, over the processes alive
        at this one."""
        out = dict.fromkeys(KINDS, 0.0)
        for key, (kind, cpu) in self.processes.items():
            earlier = before.processes.get(key)
            out[kind] += cpu - (earlier[1] if earlier is not None else 0.0)
        return out


def cpu_by_kind(server_pid: int, secantus_pid: int | None) -> CpuSnapshot:
    """A snapshot of every live process's CPU, filed by kind."""
    try:
        root = psutil.Process(server_pid)
        server = {server_pid, *(p.pid for p in root.children(recursive=True))}
    except psutil.NoSuchProcess:
        server = set()
    out: dict[tuple[int, float], tuple[str, float]] = {}
    for proc in psutil.process_iter():
        try:
            times = proc.cpu_times()
            key = (proc.pid, proc.create_time())
        except psutil.Error:
            continue
        out[key] = (_kind(proc, server, secantus_pid), times.user + times.system)
    return CpuSnapshot(out)


def connections_on(server_pid: int, port: int) -> list[int]:
    """Open client connections on ``port`` each process of the server holds (largest first):
    keep-alive pins a connection to the worker that accepted it, so this is how the load was
    split."""
    root = psutil.Process(server_pid)
    counts = []
    for proc in [root, *root.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            held = [
                c
                for c in proc.net_connections(kind="tcp")
                if c.laddr and c.laddr.port == port and c.status == psutil.CONN_ESTABLISHED
            ]
            if held:
                counts.append(len(held))
    return sorted(counts, reverse=True)
