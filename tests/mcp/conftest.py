"""One MCP test server process (Streamable HTTP) per session; every test's settings allow it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from employeevirtual.settings import Settings
from support.mcp_process import mcp_http_server, mcp_settings


@pytest.fixture(scope="session")
async def mcp_server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[tuple[str, int]]:
    log = tmp_path_factory.mktemp("mcp") / "mcp-server.log"
    async with mcp_http_server(log) as server:
        yield server


@pytest.fixture
def settings(settings: Settings, mcp_server: tuple[str, int]) -> Settings:
    return settings.model_copy(update=mcp_settings(mcp_server[1]))
