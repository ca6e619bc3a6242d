"""The app on a SecantusDB that notes every write scanning a whole collection
(``support.scan_logging_secantus``): one server per module, a database of its own per test
(``settings``), its scans forgotten at each test's start (``scanning``). SQLite only: the
MongoDB side is under test. No background relay or reconciler: a test drives them itself."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from pydantic import SecretStr

from employeevirtual.settings import Settings
from support.scan_logging_secantus import ScanLoggingSecantus


@pytest.fixture
def backend() -> str:
    return "sqlite"


@pytest.fixture(scope="module")
async def scanning_server(
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[ScanLoggingSecantus]:
    path = tmp_path_factory.mktemp("scanning")
    server = ScanLoggingSecantus(
        storage_path=str(path / "mongodb"),
        log_path=str(path / "secantus.log"),
        scan_log=path / "scans.log",
        enable_test_commands=True,  # failCommand: the relay's and the reconciler's tests
    )
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
def scanning(scanning_server: ScanLoggingSecantus) -> ScanLoggingSecantus:
    scanning_server.forget_scans()
    return scanning_server


@pytest.fixture
def settings(settings: Settings, scanning: ScanLoggingSecantus) -> Settings:
    """A 2-message window summarized after every message, by the offline summary."""
    return settings.model_copy(
        update={
            "mongodb_url": SecretStr(scanning.url),
            "agent_context_messages": 2,
            "memory_summary_every": 1,
            "memory_summary_model": "offline",
            "sync_relay_enabled": False,
            "sync_reconcile_seconds": 0,
            "sync_check_seconds": 0,
            "sync_grace_seconds": 0,
        }
    )
