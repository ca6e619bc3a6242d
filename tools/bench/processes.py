"""Whose CPU a bench step's machine CPU was: every process on the machine by kind.

A snapshot reads each process's user + system CPU from /proc (psutil) and files it under the
server (the bench server and its workers), SecantusDB, PostgreSQL, Redis, this load client or
"other". The difference of two snapshots, set against the machine's busy CPU over the same
window, leaves "exited or kernel": processes that ended inside the window (a PostgreSQL
backend of a connection that opened and closed) and the kernel's own work (interrupts).
"""

from __future__ import annotations

import os
from collections import defaultdict

import psutil

__all__ = ["KINDS", "cpu_by_kind"]

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


def cpu_by_kind(server_pid: int, secantus_pid: int | None) -> dict[str, float]:
    """CPU seconds every live process has used so far, summed by kind."""
    try:
        root = psutil.Process(server_pid)
        server = {server_pid, *(p.pid for p in root.children(recursive=True))}
    except psutil.NoSuchProcess:
        server = set()
    out: dict[str, float] = defaultdict(float)
    for proc in psutil.process_iter():
        try:
            times = proc.cpu_times()
        except psutil.Error:
            continue
        out[_kind(proc, server, secantus_pid)] += times.user + times.system
    return {kind: out.get(kind, 0.0) for kind in KINDS}
