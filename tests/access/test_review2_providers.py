"""Second security review, item 6: users may name only the providers the operator allows
(default: offline, plus OpenAI when configured; never `test`), and a provider failure reaches
the client as a short message with a request id, its details in the server log only."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from pydantic import SecretStr, ValidationError
from pydantic_ai import models as pydantic_ai_models

from employeevirtual.settings import Settings
from support.access import account, app_client
from support.fake_openai import FakeOpenAIServer

HOSTILE_MODELS = (
    "openai-codex:gpt-5",
    "gateway/openai:gpt-4o",
    "azure:gpt-4o",
    "ollama:llama3",
    "test",
    "anthropic:claude-sonnet-4-0",
    "bedrock:anthropic.claude",
)


@pytest.fixture
def fake_openai(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeOpenAIServer]:
    monkeypatch.setattr(pydantic_ai_models, "ALLOW_MODEL_REQUESTS", True)
    with FakeOpenAIServer(reply=lambda body: "ok") as server:
        yield server


async def test_only_allowed_providers_may_be_named(settings: Settings) -> None:
    async with app_client(settings) as (client, _runtime):
        user = await account(client)
        for model in (*HOSTILE_MODELS, "openai-chat:gpt-4o-mini"):
            r = await client.post(
                "/api/agents", json={"name": "x", "model": model}, headers=user.headers
            )
            assert r.status_code == 422, (model, r.text)
            assert "not offered" in r.text or "not available" in r.text, r.text
            assert "offline" in r.text  # says what may be used instead
        r = await client.post(
            "/api/agents", json={"name": "x", "model": "offline"}, headers=user.headers
        )
        assert r.status_code == 201
        # a PATCH cannot smuggle one in either
        r = await client.patch(
            f"/api/agents/{r.json()['id']}", json={"model": "test"}, headers=user.headers
        )
        assert r.status_code == 422


async def test_configured_openai_is_offered_and_the_operator_can_narrow(
    settings: Settings,
) -> None:
    async with app_client(settings, openai_api_key=SecretStr("sk-not-real")) as (client, _rt):
        user = await account(client)
        r = await client.post(
            "/api/agents",
            json={"name": "x", "model": "openai-chat:gpt-4o-mini"},
            headers=user.headers,
        )
        assert r.status_code == 201, r.text
        r = await client.post(
            "/api/agents", json={"name": "x", "model": "ollama:llama3"}, headers=user.headers
        )
        assert r.status_code == 422
    async with app_client(
        settings,
        openai_api_key=SecretStr("sk-not-real"),
        model_providers=["offline", "openai-chat"],
        allowed_models=["openai-chat:gpt-4o-mini"],
    ) as (client, _rt):
        user = await account(client)
        for model, status in (
            ("openai-chat:gpt-4o-mini", 201),
            ("openai-chat:gpt-4o", 422),
            ("openai:gpt-4o-mini", 422),
            ("offline", 201),
        ):
            r = await client.post(
                "/api/agents", json={"name": "x", "model": model}, headers=user.headers
            )
            assert r.status_code == status, (model, r.text)
    with pytest.raises(ValidationError, match="test suite only"):
        Settings(_env_file=None, model_providers="offline,test")  # type: ignore[call-arg]


async def test_provider_failures_show_no_details(
    settings: Settings, fake_openai: FakeOpenAIServer, caplog: pytest.LogCaptureFixture
) -> None:
    async with app_client(
        settings,
        openai_base_url=fake_openai.base_url,
        openai_api_key=SecretStr("sk-not-real"),
        model_max_retries=0,
        model_providers=["offline", "openai-chat", "ollama"],
    ) as (client, _runtime):
        user = await account(client)
        leaks = ("/root/.codex/auth.json", "OLLAMA_BASE_URL", "sk-not-real", "pip install")
        secret_text = "token file /root/.codex/auth.json not readable"
        fake_openai.fail(500, message=secret_text)
        openai_agent = (
            await client.post(
                "/api/agents",
                json={"name": "o", "model": "openai-chat:gpt-4o-mini"},
                headers=user.headers,
            )
        ).json()
        ollama_agent = (
            await client.post(
                "/api/agents", json={"name": "l", "model": "ollama:llama3"}, headers=user.headers
            )
        ).json()
        with caplog.at_level(logging.WARNING):
            for agent in (openai_agent, ollama_agent):
                r = await client.post(
                    "/api/chat/agent",
                    json={"message": "hi", "agent_id": agent["id"]},
                    headers=user.headers,
                )
                assert r.status_code == 502, r.text
                body = r.json()
                rid = r.headers["X-Request-ID"]
                assert body["request_id"] == rid and rid in body["detail"]
                assert len(body["detail"]) < 160
                for leak in (*leaks, "500 Internal", "fake failure"):
                    assert leak not in r.text, leak
                # the stored failure (what the history shows) is as terse
                history = await client.get(
                    f"/api/conversations/{body['conversation_id']}/messages",
                    headers=user.headers,
                )
                assert "auth.json" not in history.text and "OLLAMA" not in history.text
        logged = "\n".join(rec.getMessage() for rec in caplog.records)
        assert "auth.json" in logged  # the details are in the server log
        assert "OLLAMA_BASE_URL" in logged
