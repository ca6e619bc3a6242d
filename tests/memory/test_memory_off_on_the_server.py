"""Memory turned off on the server (``EV_MEMORY_ENABLED=false``): an agent whose own setting
keeps memory is offered no ``remember``/``forget`` and keeps nothing."""

from __future__ import annotations

import httpx
import pytest

from employeevirtual.runtime import Runtime
from employeevirtual.settings import Settings
from support.api import create_agent, register_and_login
from support.memory import PROBE_MODEL, UNKNOWN, install_probe


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"memory_enabled": False})


async def test_an_agent_keeping_memory_is_offered_no_memory_tools(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    assert runtime.memory is None
    probe = install_probe(runtime)
    headers = await register_and_login(client)
    agent = await create_agent(client, headers, model=PROBE_MODEL)
    assert agent["memory"]["enabled"] is True
    r = await client.post(
        "/api/chat/agent",
        json={"message": "remember: Likes jazz.", "agent_id": agent["id"]},
        headers=headers,
    )
    assert r.status_code == 200, r.text
    reply = r.json()["agent_message"]
    assert reply["content"] == UNKNOWN
    assert "tool_calls" not in reply["metadata"]
    assert probe.tools[-1] == []
