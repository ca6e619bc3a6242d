"""The data directory is the server's alone (issue 8, item 10): 0700 directories and 0600 files,
at creation and fixed at start for an older install (with a log line); the embedded SecantusDB
listens on 127.0.0.1 only and requires authentication."""

from __future__ import annotations

import logging
import stat
from pathlib import Path
from typing import Any

import psutil
import pytest
from pymongo import AsyncMongoClient
from pymongo.errors import OperationFailure

from employeevirtual.runtime.services import open_runtime
from employeevirtual.settings import Settings


def _loose(path: Path) -> list[str]:
    return [
        f"{p} {oct(stat.S_IMODE(p.lstat().st_mode))}"
        for p in [path, *path.rglob("*")]
        if not p.is_symlink() and stat.S_IMODE(p.lstat().st_mode) & 0o077
    ]


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_data_dir_is_private_and_secantus_listens_on_loopback_only(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    data = settings.data_dir
    # an install from before the fix: world-readable directory and files
    (data / "mongodb").mkdir(parents=True)
    data.chmod(0o755)
    (data / "mongodb").chmod(0o755)
    old = data / "employeevirtual.db"
    old.write_bytes(b"")
    old.chmod(0o644)
    old.unlink()  # an empty file is not a database; its mode was the point
    (data / "old.log").write_text("x")
    (data / "old.log").chmod(0o644)
    embedded = settings.model_copy(update={"mongodb_url": None})
    with caplog.at_level(logging.WARNING, logger="employeevirtual.security.data_dir"):
        runtime = await open_runtime(embedded)
    try:
        assert any("removed group/other access" in r.getMessage() for r in caplog.records)
        await runtime.documents.db.command("ping")
        assert runtime.secantus is not None
        listening = [
            c.laddr
            for c in psutil.net_connections(kind="inet")
            if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == runtime.secantus.port
        ]
        assert listening and all(addr.ip == "127.0.0.1" for addr in listening), listening
        # and it requires authentication: a client without the server's password gets nothing
        anonymous: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
            f"mongodb://127.0.0.1:{runtime.secantus.port}/?directConnection=true",
            serverSelectionTimeoutMS=3000,
        )
        try:
            with pytest.raises(OperationFailure, match="authentication"):
                await anonymous[settings.mongodb_database].probe.insert_one({"x": 1})
            with pytest.raises(OperationFailure):
                await anonymous.list_database_names()
        finally:
            await anonymous.close()
        assert stat.S_IMODE((data / "mongodb_password").stat().st_mode) == 0o600
        # everything the server created meanwhile (SQLite, SecantusDB files, its log) is private
        assert (data / "employeevirtual.db").exists()
        assert any((data / "mongodb").iterdir())
        assert _loose(data) == []
    finally:
        await runtime.close()
    assert _loose(data) == []
