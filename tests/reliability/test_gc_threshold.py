"""The server's cyclic GC setting (issue 17): a turn frees what it allocates by reference
counting, so at Python's default young-generation threshold (700) nearly every turn started a
collection that found nothing. With ``EV_GC_YOUNG_THRESHOLD`` turns run without them, and the
process's own setting comes back when the app stops."""

from __future__ import annotations

import gc
from typing import Any

import httpx
import pytest

from employeevirtual.main import create_app
from employeevirtual.settings import Settings
from support.api import create_agent, register_and_login


async def _young_collections_in_turns(settings: Settings, turns: int) -> int:
    collections = 0

    def count(phase: str, info: dict[str, Any]) -> None:
        nonlocal collections
        if phase == "start":
            collections += 1

    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            headers = await register_and_login(client)
            agent = await create_agent(client, headers)
            r = await client.post(
                "/api/chat/agent", json={"message": "hi", "agent_id": agent["id"]}, headers=headers
            )
            assert r.status_code == 200, r.text
            cid = r.json()["conversation_id"]
            gc.callbacks.append(count)
            try:
                for i in range(turns):
                    r = await client.post(
                        "/api/chat/agent",
                        json={"message": f"turn {i}", "conversation_id": cid},
                        headers=headers,
                    )
                    assert r.status_code == 200, r.text
            finally:
                gc.callbacks.remove(count)
    return collections


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_turns_run_without_young_collections_and_the_setting_is_restored(
    settings: Settings,
) -> None:
    before = gc.get_threshold()
    assert before[0] < 10_000  # the test process runs at Python's default
    at_default = await _young_collections_in_turns(
        settings.model_copy(update={"gc_young_threshold": 0, "rate_limit_chat": 1000}), 30
    )
    assert gc.get_threshold() == before
    tuned = await _young_collections_in_turns(
        settings.model_copy(update={"rate_limit_chat": 1000}), 30
    )
    assert gc.get_threshold() == before
    assert at_default >= 15  # about one a turn (what the setting is for)
    assert tuned <= 3
