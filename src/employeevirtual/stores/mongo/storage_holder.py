"""Which process holds an embedded SecantusDB's storage, and whether it was left behind.

The embedded child of a server gets SIGTERM when that server dies (even by SIGKILL) and then
closes its files. Normally that takes a second or two; once, on a loaded CI machine, it had not
let go after 20 s, and the restarted server failed to start. A child whose starter has died is
a leftover nobody will stop: after a grace period the next start kills it. A child whose
starter still runs belongs to another live EmployeeVirtual process on the same data dir, and is
never touched.

Linux only (``/proc``); elsewhere no holder is ever found and the start just waits."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["STARTED_BY_ENV", "StorageHolder", "storage_holders"]

# set in the child's environment by the launcher: the pid of the process that started it
STARTED_BY_ENV = "EV_SECANTUS_STARTED_BY"

_PROC = Path("/proc")


@dataclass(frozen=True, slots=True)
class StorageHolder:
    pid: int
    started_by: int | None  # None: not started by our launcher (or unreadable)
    parent: int

    @property
    def orphaned(self) -> bool:
        """Its starter is gone: the kernel gave it a new parent."""
        return self.started_by is not None and self.parent != self.started_by


def _argv(pid: str) -> list[str]:
    raw = (_PROC / pid / "cmdline").read_bytes()
    return raw.rstrip(b"\0").decode(errors="replace").split("\0")


def _started_by(pid: str) -> int | None:
    with contextlib.suppress(OSError, ValueError):
        for entry in (_PROC / pid / "environ").read_bytes().split(b"\0"):
            name, _, value = entry.partition(b"=")
            if name.decode(errors="replace") == STARTED_BY_ENV:
                return int(value)
    return None


def _parent(pid: str) -> int:
    for line in (_PROC / pid / "status").read_text().splitlines():
        if line.startswith("PPid:"):
            return int(line.split()[1])
    raise ValueError(f"no PPid in /proc/{pid}/status")


def storage_holders(storage_path: str) -> list[StorageHolder]:
    """SecantusDB processes started on ``storage_path`` (by their command line)."""
    if not _PROC.is_dir():
        return []
    found: list[StorageHolder] = []
    for entry in _PROC.iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            argv = _argv(entry.name)
            if not any("secantusd" in part for part in argv[:2]):
                continue
            at = argv.index("--storage-path")
            if at + 1 >= len(argv) or argv[at + 1] != storage_path:
                continue
            holder = StorageHolder(int(entry.name), _started_by(entry.name), _parent(entry.name))
        except (OSError, ValueError):  # gone meanwhile, or not ours to read
            continue
        found.append(holder)
    return found
