from __future__ import annotations

import pytest

from employeevirtual.settings import Settings


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """No background relay or reconciler: each test drives them itself, and sees the lag."""
    return settings.model_copy(
        update={"sync_relay_enabled": False, "sync_reconcile_seconds": 0, "sync_grace_seconds": 0}
    )
