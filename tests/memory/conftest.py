from __future__ import annotations

import pytest

from employeevirtual.settings import Settings


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Summaries by the offline model's extractive summary (the context probe answers
    questions; it does not write summaries)."""
    return settings.model_copy(update={"memory_summary_model": "offline"})
