"""One embedding model per index: a server configured with another model refuses to mix
vectors (knowledge answers 503 naming the fix, chat keeps working), and
``employeevirtual knowledge reindex`` re-embeds every document with the new model."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from uuid import UUID

import httpx

from employeevirtual.main import create_app
from employeevirtual.runtime import Runtime
from employeevirtual.settings import Settings
from support.api import create_agent, register_and_login
from support.cli import run_cli_here
from support.knowledge import create_base, upload, wait_done

SMALL = "wordllama:l2_supercat-128"


@asynccontextmanager
async def _app(settings: Settings) -> AsyncIterator[tuple[httpx.AsyncClient, Runtime]]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("203.0.113.12", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield c, app.state.runtime


async def test_another_model_is_refused_until_reindexed(settings: Settings) -> None:
    async with _app(settings) as (client, _):
        headers = await register_and_login(client)
        base = await create_base(client, headers)
        doc = await upload(client, headers, base["id"], "hours.md", b"# Hours\n\nOpen at nine.")
        assert (await wait_done(client, headers, base["id"], doc["id"]))["status"] == "ready"
        agent = await create_agent(client, headers, knowledge_base_ids=[base["id"]])

    changed = settings.model_copy(update={"embedding_model": SMALL})
    async with _app(changed) as (client, runtime):
        assert runtime.knowledge.unavailable is not None
        r = await client.post(
            f"/api/knowledge-bases/{base['id']}/search", json={"query": "open"}, headers=headers
        )
        assert r.status_code == 503 and "knowledge reindex" in r.json()["detail"], r.text
        r = await client.post(
            "/api/chat/agent",
            json={"message": "When do you open?", "agent_id": agent["id"]},
            headers=headers,
        )
        assert r.status_code == 200 and r.json()["sources"] == []

    env = {
        "EV_DATA_DIR": str(settings.data_dir),
        "EV_DATABASE_URL": settings.sql_url,
        "EV_DATABASE_SCHEMA": settings.database_schema,
        "EV_SECRET_KEY": "unused-by-reindex-0123456789abcdef",
        "EV_EMBEDDING_MODEL": SMALL,
    }
    code, out = await run_cli_here("knowledge", "reindex", env=env)
    assert code == 0, out
    assert f"1 documents queued for {SMALL}" in out

    async with _app(changed) as (client, runtime):
        assert runtime.knowledge.unavailable is None
        done = await wait_done(client, headers, base["id"], doc["id"])
        assert done["status"] == "ready" and done["embedding_model"] == SMALL
        assert await runtime.knowledge.index.count(document_id=UUID(doc["id"])) == 1
        r = await client.post(
            "/api/chat/agent",
            json={"message": "When do you open?", "agent_id": agent["id"]},
            headers=headers,
        )
        assert r.status_code == 200
        assert r.json()["sources"][0]["document_id"] == doc["id"]
