"""The data directory holds the SQLite database, SecantusDB's files and log, and the signing
key: only the server's own user may read it. The directory (and those below it) is 0700, its
files 0600, at creation (umask 077 from here on) and for existing ones at every start (fixed
with one log line)."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

__all__ = ["secure_data_dir"]

log = logging.getLogger(__name__)

_DIR_MODE = 0o700
_FILE_MODE = 0o600


def secure_data_dir(path: Path) -> int:
    """Create ``path`` if needed and take group/other permissions off everything in it;
    returns how many entries were fixed. Symbolic links are left alone (never followed)."""
    os.umask(0o077)  # what this process creates from now on: the SQLite WAL, SecantusDB files
    path.mkdir(mode=_DIR_MODE, parents=True, exist_ok=True)
    fixed = 0
    entries = [path, *path.rglob("*")]
    for entry in entries:
        try:
            info = entry.lstat()
        except FileNotFoundError:  # gone meanwhile (a WAL file checkpointed away)
            continue
        if stat.S_ISLNK(info.st_mode):
            continue
        wanted = _DIR_MODE if stat.S_ISDIR(info.st_mode) else _FILE_MODE
        if stat.S_IMODE(info.st_mode) & 0o077:
            os.chmod(entry, stat.S_IMODE(info.st_mode) & ~0o077 | (wanted & 0o700))
            fixed += 1
    if fixed:
        log.warning(
            "data directory %s: removed group/other access from %d entries (now 0700 dirs, "
            "0600 files)",
            path,
            fixed,
        )
    return fixed
