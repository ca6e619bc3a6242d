"""The data directory: one server at a time, writable, and where the embedded MongoDB listens.

A server takes an exclusive ``flock`` on ``<data dir>/server.lock`` before it touches anything
there (migrations, SecantusDB files). The kernel drops the lock when the process dies, however it
dies, so a stale lock never blocks a restart. While the lock is held, ``<data dir>/mongodb.url``
says where the server's embedded SecantusDB listens: the command-line tools (``sync check``)
read it instead of starting a second SecantusDB on the same files.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from employeevirtual.settings import Settings

__all__ = [
    "DataDirBusy",
    "DataDirError",
    "DataDirLock",
    "check_writable",
    "embedded_mongodb_url",
    "lock_holder",
    "preflight",
    "sqlite_files",
    "write_mongodb_url",
]

LOCK_FILE = "server.lock"
URL_FILE = "mongodb.url"


class DataDirError(RuntimeError):
    """The server cannot use its data directory; the message says what to do, in one line."""


class DataDirBusy(DataDirError):
    pass


def check_writable(data_dir: Path, *files: str) -> None:
    """Create ``data_dir`` if needed and prove a file can be written in it (and that the named
    files, if present, can be written), naming the path that is not."""
    hint = "give the server's user write access to it, or set EV_DATA_DIR to another directory"
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=data_dir, prefix=".write-check-"):
            pass
    except OSError as exc:
        raise DataDirError(
            f"the data directory {data_dir} is not writable ({exc.strerror or exc}); {hint}"
        ) from None
    for name in files:
        path = data_dir / name
        if path.exists() and not os.access(path, os.W_OK):
            raise DataDirError(f"{path} is not writable; {hint}")


class DataDirLock:
    """An exclusive lock on the data directory, held until ``release`` or process exit."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.path = data_dir / LOCK_FILE
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise
            holder = lock_holder(self.data_dir)
            who = f" (pid {holder})" if holder else ""
            raise DataDirBusy(
                f"another EmployeeVirtual server{who} is using the data directory "
                f"{self.data_dir}; stop it first, or set EV_DATA_DIR to another directory"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            (self.data_dir / URL_FILE).unlink(missing_ok=True)
        os.close(self._fd)  # closing the descriptor drops the flock
        self._fd = None


def lock_holder(data_dir: Path) -> int | None:
    """The pid of the process holding the data directory's lock, or None when it is free."""
    path = data_dir / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            text = path.read_text().strip()
            return int(text) if text.isdigit() else -1
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def write_mongodb_url(data_dir: Path, url: str) -> None:
    """Where the embedded SecantusDB of the server holding the lock listens (atomic replace).
    The URL carries the embedded user's credentials: the file is 0600, like the password file
    next to it."""
    tmp = data_dir / f".{URL_FILE}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(url + "\n")
    tmp.replace(data_dir / URL_FILE)


def embedded_mongodb_url(data_dir: Path) -> str | None:
    """The URL a running server wrote, or None (no server running, or none written)."""
    if lock_holder(data_dir) is None:
        return None  # a file left by a killed server says nothing
    try:
        return (data_dir / URL_FILE).read_text().strip() or None
    except OSError:
        return None


def preflight(settings: Settings) -> None:
    """The start-up checks on the data dir, alone: raises DataDirError with a one-line message
    (``serve`` prints it instead of a traceback). Here rather than in ``runtime``, so that
    ``serve`` checks without importing the whole app first."""
    check_writable(settings.data_dir, *sqlite_files(settings))
    if settings.database_url is None or settings.mongodb_url is None:
        lock = DataDirLock(settings.data_dir)
        lock.acquire()
        lock.release()


def sqlite_files(settings: Settings) -> tuple[str, ...]:
    """The embedded default's SQLite files, which must be writable too."""
    if settings.database_url:
        return ()
    return ("employeevirtual.db", "employeevirtual.db-wal", "employeevirtual.db-shm")
