"""The parsing child starts with the server (its imports and tokenizer are paid before the
first document), unless EV_KNOWLEDGE_PARSER_WARM_UP=false (what the test suite sets: most tests
ingest nothing); then it starts at the first document."""

from __future__ import annotations

import pytest

from employeevirtual.main import create_app
from employeevirtual.settings import Settings


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
@pytest.mark.parametrize("warm_up", [True, False])
async def test_the_parser_child_starts_with_the_server_unless_told_not_to(
    settings: Settings, warm_up: bool
) -> None:
    assert Settings.model_fields["knowledge_parser_warm_up"].default is True
    app = create_app(settings.model_copy(update={"knowledge_parser_warm_up": warm_up}))
    async with app.router.lifespan_context(app):
        parser = app.state.runtime.knowledge.worker.parser
        assert (parser._pool is not None) is warm_up
