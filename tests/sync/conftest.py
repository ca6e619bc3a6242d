from __future__ import annotations

import pytest

from employeevirtual.settings import Settings


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """No background relay or reconciler: each test drives them itself, and sees the lag."""
    return settings.model_copy(
        update={
            "sync_relay_enabled": False,
            "sync_reconcile_seconds": 0,
            "sync_check_seconds": 0,
            "sync_grace_seconds": 0,
        }
    )


@pytest.fixture
def cli_env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """The EV_* variables the sync CLI reads, pointing at this test's stores."""
    env = {
        "EV_DATA_DIR": str(settings.data_dir),
        "EV_DATABASE_URL": settings.database_url or "",
        "EV_DATABASE_SCHEMA": settings.database_schema,
        "EV_MONGODB_URL": settings.mongodb_url.get_secret_value() if settings.mongodb_url else "",
        "EV_MONGODB_DATABASE": settings.mongodb_database,
        "EV_SYNC_GRACE_SECONDS": "0",
    }
    for name, value in env.items():
        if value:
            monkeypatch.setenv(name, value)
