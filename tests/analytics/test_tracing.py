"""OpenTelemetry tracing (``EV_OTEL_ENABLED``) captured with the OTel SDK's in-memory exporter:
a turn yields Pydantic AI's agent and model spans plus SQL and MongoDB spans (a background
summary its model span inside one of ours), and no message text, password, token or key lands
in any attribute unless ``EV_OTEL_INCLUDE_CONTENT`` allows the message text."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pydantic_ai import Agent, InstrumentationSettings
from pydantic_ai.messages import ModelResponse, TextPart
from pydantic_ai.models.function import FunctionModel

from employeevirtual.agents.models import ModelRegistry
from employeevirtual.memory.summaries import Summarizer
from employeevirtual.settings import Settings
from employeevirtual.stores.records import MessageRecord
from support.access import account, app_client
from support.api import PASSWORD

SECRET_TEXT = "the vault code is swordfish-7731"


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    """The process's tracer provider (set once per process; OTel refuses a second) with an
    in-memory exporter of this test's own; agent instrumentation is reset afterwards."""
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    assert isinstance(trace.get_tracer_provider(), TracerProvider)
    exporter = InMemorySpanExporter()
    processor = SimpleSpanProcessor(exporter)
    provider.add_span_processor(processor)
    try:
        yield exporter
    finally:
        processor.shutdown()  # the provider keeps it, but it exports nothing more
        Agent.instrument_all(False)


def _values(span: ReadableSpan) -> list[str]:
    out: list[str] = [span.name]
    for value in (span.attributes or {}).values():
        out.extend(str(v) for v in value) if isinstance(value, tuple) else out.append(str(value))
    for event in span.events:
        out.extend(str(v) for v in (event.attributes or {}).values())
    return out


async def _turn(settings: Settings, **overrides: Any) -> list[str]:
    """A tool-using turn (calculator) on the offline model with tracing on; the spans and the
    secrets the run handled (password, bearer token, signing key)."""
    async with app_client(settings, otel_enabled=True, **overrides) as (client, _runtime):
        user = await account(client, name="Tess")
        r = await client.post(
            "/api/agents",
            json={"name": "T", "tools": ["calculator"], "instructions": "be brief"},
            headers=user.headers,
        )
        assert r.status_code == 201, r.text
        body = {"message": f"{SECRET_TEXT}; what is 12 * 7?", "agent_id": r.json()["id"]}
        r = await client.post("/api/chat/agent", json=body, headers=user.headers)
        assert r.status_code == 200, r.text
        assert "84" in r.json()["agent_message"]["content"]
        token = user.headers["Authorization"].removeprefix("Bearer ")
        return [PASSWORD, token, settings.secret_key.get_secret_value()]


async def test_a_turn_is_traced_without_its_text(
    settings: Settings, exporter: InMemorySpanExporter
) -> None:
    secrets = await _turn(settings)
    spans = exporter.get_finished_spans()
    names = [s.name for s in spans]
    agent_spans = [s for s in spans if s.name.startswith("invoke_agent") or s.name == "agent run"]
    assert agent_spans, names
    assert any(n.startswith("chat ") for n in names), names  # the model request
    assert any(n.startswith("execute_tool calculator") for n in names), names
    assert {"sql SELECT", "sql INSERT", "sql UPDATE"} <= set(names), names
    assert any(n == "mongodb insert" for n in names), names
    sql = next(s for s in spans if s.name == "sql INSERT")
    assert sql.attributes is not None and sql.attributes["db.system"] in ("sqlite", "postgresql")
    attributes = agent_spans[0].attributes
    assert attributes is not None and attributes.get("gen_ai.agent.name") == "T"
    seen = [v for s in spans for v in _values(s)]
    for secret in (SECRET_TEXT, "swordfish", "be brief", *secrets):
        assert not any(secret in v for v in seen), f"{secret!r} is in a span"


async def test_message_text_reaches_spans_only_when_allowed(
    settings: Settings, exporter: InMemorySpanExporter
) -> None:
    """The counterpart: with ``EV_OTEL_INCLUDE_CONTENT`` the same turn's text is in the spans
    (so the test above can see text when it is there); secrets still are not."""
    secrets = await _turn(settings, otel_include_content=True)
    seen = [v for s in exporter.get_finished_spans() for v in _values(s)]
    assert any("swordfish" in v for v in seen)
    for secret in secrets:
        assert not any(secret in v for v in seen), "a credential is in a span"


async def test_a_summary_request_is_traced_without_its_text(
    exporter: InMemorySpanExporter,
) -> None:
    """The background summary is one model request (no agent run): its ``chat`` span sits in
    a ``conversation-summary`` span, and neither holds the dialogue's text."""
    Agent.instrument_all(InstrumentationSettings(include_content=False))
    models = ModelRegistry(openai_base_url=None, openai_api_key=None)
    models.override("test:summary", FunctionModel(lambda m, i: ModelResponse([TextPart("ok")])))
    summarizer = Summarizer(
        models, model="test:summary", max_chars=100, timeout_seconds=5, trace=True
    )
    said = MessageRecord(
        id=uuid4(),
        conversation_id=uuid4(),
        seq=1,
        user_id=uuid4(),
        agent_id=None,
        content=SECRET_TEXT,
        message_type="user",
        metadata={},
        created_at=datetime.now(UTC),
    )
    assert await summarizer.summarize("", [said], model="test:summary") == "ok"
    spans = exporter.get_finished_spans()
    outer = next(s for s in spans if s.name == "conversation-summary")
    chat = next(s for s in spans if s.name.startswith("chat "))
    assert chat.parent is not None and chat.parent.span_id == outer.context.span_id
    assert outer.attributes is not None
    assert outer.attributes["gen_ai.request.model"] == "test:summary"
    assert not any("swordfish" in v for s in spans for v in _values(s))
