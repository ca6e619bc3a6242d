"""A data directory whose embedded SecantusDB was provisioned by an earlier start, as the
second and every later ``make run`` finds it.

The first start on an empty data dir provisions SecantusDB's user with a start of its own
without ``--auth`` (and its stop) before the real start: ~6-7 s of a child's start and stop on
the 2-core box. Tests about what a running embedded server does (draining, supervision, the
operator's CLI) begin from a copy of a data dir provisioned once per session instead; the first
start's provisioning itself is tested where it is the subject (``tests/security/test_data_dir``,
and every test that starts on an empty data dir).
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import secrets
import shutil
from pathlib import Path
from typing import IO

from employeevirtual.stores.mongo.embedded import provision

__all__ = ["EmbeddedTemplate"]

_STORAGE = "mongodb"  # what start_embedded keeps in the data dir
_SECRET = "mongodb_password"
_COMPLETE = ".complete"


def _locked(root: Path) -> IO[str]:
    root.mkdir(parents=True, exist_ok=True)
    lock = open(root / "embedded-mongodb-template.lock", "w")  # noqa: SIM115 - held until closed
    fcntl.flock(lock, fcntl.LOCK_EX)
    return lock


def _start_build(directory: Path) -> bool:
    """Whether the template is still to be made (an empty directory is ready for it then)."""
    if (directory / _COMPLETE).exists():
        return False
    shutil.rmtree(directory, ignore_errors=True)  # a build that was cut short
    directory.mkdir()
    return True


def _finish_build(directory: Path, password: str) -> None:
    (directory / _SECRET).write_text(password)
    (directory / _COMPLETE).touch()


class EmbeddedTemplate:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    @classmethod
    async def shared(cls, root: Path) -> EmbeddedTemplate:
        """The template under ``root``, made by the first caller (across pytest-xdist workers,
        under a file lock) and reused by the others."""
        directory = root / "embedded-mongodb-template"
        lock = await asyncio.to_thread(_locked, root)
        try:
            if await asyncio.to_thread(_start_build, directory):
                password = secrets.token_urlsafe(32)
                # the product's own provisioning (a start without --auth, createUser, stop)
                await provision(
                    str(directory / _STORAGE), str(directory / "secantus.log"), password
                )
                await asyncio.to_thread(_finish_build, directory, password)
        finally:
            lock.close()  # and with it the lock
        return cls(directory)

    def copy_into(self, data_dir: Path) -> None:
        """SecantusDB's files and its user's password, private (0700/0600) as the server
        keeps them."""
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        shutil.copytree(self.directory / _STORAGE, data_dir / _STORAGE)
        shutil.copyfile(self.directory / _SECRET, data_dir / _SECRET)
        for entry in [data_dir / _STORAGE, *(data_dir / _STORAGE).rglob("*")]:
            entry.chmod(0o700 if entry.is_dir() else 0o600)
        os.chmod(data_dir / _SECRET, 0o600)
