"""/metrics after real traffic, parsed with ``prometheus_client.parser``: the counters move by
exactly what was done. The registry is the process's, so the test compares before and after."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from employeevirtual.main import create_app
from employeevirtual.settings import Settings
from support.access import account, app_client
from support.knowledge import create_base, upload
from support.live import paced
from support.sse import events, serve

TOKEN = "metrics-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


async def scrape(client: httpx.AsyncClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    r = await client.get("/metrics", headers=AUTH)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def delta(after: dict, before: dict, name: str, **labels: str) -> float:  # type: ignore[type-arg]
    key = (name, tuple(sorted(labels.items())))
    return after.get(key, 0.0) - before.get(key, 0.0)


def total(samples: dict, name: str, **labels: str) -> float:  # type: ignore[type-arg]
    return sum(
        v
        for (n, lbl), v in samples.items()
        if n == name and all(dict(lbl).get(k) == x for k, x in labels.items())
    )


async def test_metrics_count_the_traffic(settings: Settings) -> None:
    async with app_client(settings, metrics_token=SecretStr(TOKEN)) as (client, _runtime):
        assert (await client.get("/metrics")).status_code == 401
        r = await client.get("/metrics", headers={"Authorization": "Bearer wrong"})
        assert r.status_code == 401
        user = await account(client, name="Ana")
        r = await client.post("/api/agents", json={"name": "A"}, headers=user.headers)
        agent_id = r.json()["id"]
        before = await scrape(client)

        tokens_in = tokens_out = 0
        cid = None
        for i in range(3):
            body = {
                "message": f"hello {i}",
                **({"conversation_id": cid} if cid else {"agent_id": agent_id}),
            }
            r = await client.post("/api/chat/agent", json=body, headers=user.headers)
            assert r.status_code == 200, r.text
            cid = r.json()["conversation_id"]
            tokens_in += r.json()["usage"]["input_tokens"]
            tokens_out += r.json()["usage"]["output_tokens"]
        missing = "00000000-0000-0000-0000-000000000000"
        r = await client.get(f"/api/conversations/{missing}", headers=user.headers)
        assert r.status_code == 404
        r = await client.get(f"/api/conversations/{cid}/messages", headers=user.headers)
        assert r.status_code == 200

        after = await scrape(client)
        chat = {"method": "POST", "route": "/api/chat/agent"}
        assert delta(after, before, "ev_http_requests_total", **chat, status="200") == 3
        conv = {"method": "GET", "route": "/api/conversations/{conversation_id}"}
        assert delta(after, before, "ev_http_requests_total", **conv, status="404") == 1
        assert delta(after, before, "ev_http_request_duration_seconds_count", **chat) == 3
        assert (
            delta(after, before, "ev_http_request_duration_seconds_bucket", **chat, le="+Inf") == 3
        )
        assert delta(after, before, "ev_turns_total", outcome="success") == 3
        assert delta(after, before, "ev_turn_duration_seconds_count", outcome="success") == 3
        model = {"model": "offline"}
        assert delta(after, before, "ev_tokens_total", **model, direction="input") == tokens_in
        assert delta(after, before, "ev_tokens_total", **model, direction="output") == tokens_out
        # the stores, timed at their drivers: the turns wrote SQL and MongoDB
        assert total(after, "ev_store_operation_duration_seconds_count", store="sql") > total(
            before, "ev_store_operation_duration_seconds_count", store="sql"
        )
        mongo = {"store": "mongodb", "operation": "write_turn"}
        assert delta(after, before, "ev_store_operation_duration_seconds_count", **mongo) >= 3
        # measured at scrape time
        assert ("ev_relay_lag_seconds", ()) in after
        assert ("ev_relay_backlog_conversations", ()) in after
        for name in ("ev_open_streams", "ev_ingestion_queue_depth"):
            assert (name, ()) in after  # exposed for the streaming / ingestion features


async def test_metrics_are_off_without_a_token(client: httpx.AsyncClient) -> None:
    assert (await client.get("/metrics")).status_code == 404
    assert (await client.get("/metrics", headers=AUTH)).status_code == 404


async def test_open_streams_and_ingestion_queue_gauges(settings: Settings) -> None:
    """``ev_open_streams`` counts an SSE answer while it is being sent; ``ev_ingestion_queue_depth``
    counts documents not yet ingested (the worker is off here, so an upload stays queued)."""
    app = create_app(
        settings.model_copy(
            update={"metrics_token": SecretStr(TOKEN), "knowledge_ingest_in_server": False}
        )
    )
    async with app.router.lifespan_context(app), serve(app) as url:
        runtime = app.state.runtime
        model = paced("openai-chat:gauge-paced", delay=0.05)
        runtime.models.override(model.model_name, model)
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            user = await account(client, name="Gus")
            r = await client.post(
                "/api/agents", json={"name": "G", "model": model.model_name}, headers=user.headers
            )
            agent_id = r.json()["id"]
            before = await scrape(client)
            assert before[("ev_ingestion_queue_depth", ())] == 0
            body = {"message": "hi", "agent_id": agent_id}
            headers = {**user.headers, "Accept": "text/event-stream"}
            async with client.stream("POST", "/api/chat/agent", json=body, headers=headers) as r:
                stream = events(r)
                first = await anext(stream)
                assert first is not None and first.event == "turn"
                during = await scrape(client)
                assert delta(during, before, "ev_open_streams") == 1
                kinds = [e.event async for e in stream if e is not None]
                assert kinds[-1] == "done"
            after = await scrape(client)
            assert delta(after, before, "ev_open_streams") == 0

            base = await create_base(client, user.headers)
            for i in range(2):
                await upload(client, user.headers, base["id"], f"n{i}.txt", b"some text")
            queued = await scrape(client)
            assert queued[("ev_ingestion_queue_depth", ())] == 2
            await runtime.knowledge.worker.run_once()
            drained = await scrape(client)
            assert drained[("ev_ingestion_queue_depth", ())] == 0
