"""The real provider code path: an agent on ``openai-chat:gpt-4o-mini`` talking to a local
OpenAI-compatible server, with tokens and cost recorded in both stores; and its failures."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from pydantic_ai import models as pydantic_ai_models
from sqlalchemy import select

from employeevirtual.main import create_app
from employeevirtual.runtime import Runtime
from employeevirtual.settings import Settings
from employeevirtual.stores.sql.tables import conversations, messages
from support.api import create_agent, register_and_login
from support.fake_openai import FakeOpenAIServer


@pytest.fixture
def fake_openai(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeOpenAIServer]:
    # requests go to this local server only; the suite's guard stays on everywhere else
    monkeypatch.setattr(pydantic_ai_models, "ALLOW_MODEL_REQUESTS", True)
    with FakeOpenAIServer(reply=lambda body: "Olá! Sou seu assistente virtual.") as server:
        yield server


@pytest.fixture
async def provider_app(
    settings: Settings, fake_openai: FakeOpenAIServer
) -> AsyncIterator[tuple[httpx.AsyncClient, Runtime]]:
    configured = settings.model_copy(
        update={
            "openai_base_url": fake_openai.base_url,
            "openai_api_key": SecretStr("sk-test-not-a-real-key"),
            "model_max_retries": 0,
            "agent_timeout_seconds": 2.0,
        }
    )
    app = create_app(configured)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield c, app.state.runtime


async def _agent(client: httpx.AsyncClient) -> tuple[dict[str, str], dict[str, Any]]:
    headers = await register_and_login(client)
    agent = await create_agent(
        client,
        headers,
        model="openai-chat:gpt-4o-mini",
        instructions="Responda em português.",
        model_settings={"temperature": 0.2, "max_tokens": 300},
    )
    return headers, agent


async def test_openai_compatible_turn_records_tokens_and_cost(
    provider_app: tuple[httpx.AsyncClient, Runtime], fake_openai: FakeOpenAIServer
) -> None:
    client, runtime = provider_app
    headers, agent = await _agent(client)
    r = await client.post(
        "/api/chat/agent", params={"message": "ola", "agent_id": agent["id"]}, headers=headers
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["agent_message"]["content"] == "Olá! Sou seu assistente virtual."
    sent = fake_openai.requests[-1]
    assert sent["model"] == "gpt-4o-mini"
    assert sent["temperature"] == 0.2
    assert sent["messages"][0] == {"role": "system", "content": "Responda em português."}
    assert sent["messages"][-1]["content"] == "ola"
    usage = body["usage"]
    # the fake server counts words: prompt = instructions (3) + "ola" (1); reply = 5 words
    assert (usage["input_tokens"], usage["output_tokens"]) == (4, 5)
    assert usage["cost"] is not None and usage["cost"] > 0
    meta = body["agent_message"]["metadata"]
    assert meta["model_used"] == "openai-chat:gpt-4o-mini"
    assert meta["tokens_used"] == 9 and meta["cost"] == usage["cost"]

    cid = uuid.UUID(body["conversation_id"])
    # a second turn sends the history along
    r = await client.post(
        "/api/chat/agent",
        json={"message": "e depois?", "conversation_id": str(cid)},
        headers=headers,
    )
    assert r.status_code == 200, r.text
    roles = [m["role"] for m in fake_openai.requests[-1]["messages"]]
    assert roles == ["system", "user", "assistant", "user"]

    async with runtime.engine.connect() as conn:
        row = (await conn.execute(select(conversations).where(conversations.c.id == cid))).one()
        stored = (
            (
                await conn.execute(
                    select(messages.c.message_metadata)
                    .where(messages.c.conversation_id == cid, messages.c.message_type == "agent")
                    .order_by(messages.c.seq)
                )
            )
            .scalars()
            .all()
        )
    total_tokens = sum(m["tokens_used"] for m in stored)
    assert row.total_tokens == total_tokens
    assert Decimal(row.total_cost) == pytest.approx(Decimal(str(sum(m["cost"] for m in stored))))
    doc = await runtime.documents.conversations.find_one({"_id": str(cid)})
    assert doc is not None
    assert doc["metadata"]["total_tokens"] == total_tokens
    assert doc["metadata"]["total_cost"] == pytest.approx(float(row.total_cost))
    await runtime.acks.flush()  # the runs' chat_analytics documents are batched
    analytics = await runtime.documents.analytics.find({"conversation_id": str(cid)}).to_list()
    assert sorted(a["input_tokens"] for a in analytics) == sorted(m["input_tokens"] for m in stored)
    assert all(a["cost"] and a["cost"] > 0 and a["status"] == "success" for a in analytics)


@pytest.mark.parametrize(
    ("fault", "status", "kind", "text"),
    [
        ({"fail": 500}, 502, "provider", "HTTP 500"),
        ({"fail": 429}, 502, "provider", "HTTP 429"),
        ({"delay": 3.0}, 504, "timeout", "did not answer within 2 s"),
    ],
)
async def test_provider_failure_keeps_the_user_message(
    provider_app: tuple[httpx.AsyncClient, Runtime],
    fake_openai: FakeOpenAIServer,
    fault: dict[str, float],
    status: int,
    kind: str,
    text: str,
) -> None:
    client, runtime = provider_app
    headers, agent = await _agent(client)
    if "fail" in fault:
        fake_openai.fail(int(fault["fail"]), times=1)
    else:
        fake_openai.delay(fault["delay"], times=1)
    r = await client.post(
        "/api/chat/agent", params={"message": "ola", "agent_id": agent["id"]}, headers=headers
    )
    assert r.status_code == status, r.text
    body = r.json()
    assert text in body["detail"]
    cid = body["conversation_id"]
    r = await client.get(f"/api/conversations/{cid}", headers=headers)
    assert r.json()["message_count"] == 2
    assert text in r.json()["last_error"]
    r = await client.get(f"/api/conversations/{cid}/messages", headers=headers)
    kept = r.json()["messages"]
    assert (kept[0]["message_type"], kept[0]["content"]) == ("user", "ola")
    assert kept[1]["message_type"] == "error" and kept[1]["metadata"]["error"] == kind
    await runtime.acks.flush()
    failed = await runtime.documents.analytics.find({"conversation_id": cid}).to_list()
    assert [a["status"] for a in failed] == [kind]
    # the next turn works and does not send the failed exchange to the model as dialogue
    r = await client.post(
        "/api/chat/agent", json={"message": "de novo", "conversation_id": cid}, headers=headers
    )
    assert r.status_code == 200, r.text
    roles = [m["role"] for m in fake_openai.requests[-1]["messages"]]
    assert roles == ["system", "user", "user"]
