"""Monthly budgets on real stores: refusal before the model is called, the 80%/100% warnings
(audit row, system log, webhook received by a real local server), the month boundary with an
injected clock, the budget in GET /api/users/me, and no double counting under concurrency or
idempotent replay."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai.usage import RequestUsage
from sqlalchemy import func, select

from employeevirtual.runtime import Runtime
from employeevirtual.settings import Settings
from employeevirtual.stores.sql import tables
from support.access import Account, account, app_client, audit_rows
from support.webhook import webhook_server

MODEL = "openai-chat:budget-probe"
TOKENS = 100  # per turn: 60 in + 40 out


def probe(calls: list[int]) -> FunctionModel:
    async def reply(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        calls.append(1)
        await asyncio.sleep(0.01)
        return ModelResponse(
            parts=[TextPart("ok")], usage=RequestUsage(input_tokens=60, output_tokens=40)
        )

    async def stream(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[str]:
        calls.append(1)
        yield "ok"  # streamed usage is the model's estimate: tests read it back from SQL

    return FunctionModel(reply, stream_function=stream, model_name=MODEL)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


async def setup(
    client: httpx.AsyncClient, runtime: Runtime, calls: list[int]
) -> tuple[Account, Account, str]:
    runtime.models.override(MODEL, probe(calls))
    admin = await account(client, name="Admin")
    user = await account(client, name="Ana")
    r = await client.post("/api/agents", json={"name": "A", "model": MODEL}, headers=user.headers)
    assert r.status_code == 201, r.text
    return admin, user, str(r.json()["id"])


async def chat(
    client: httpx.AsyncClient, user: Account, agent_id: str, **headers: str
) -> httpx.Response:
    return await client.post(
        "/api/chat/agent",
        json={"message": "hi", "agent_id": agent_id},
        headers={**user.headers, **headers},
    )


async def budget(
    client: httpx.AsyncClient, admin: Account, scope: str, scope_id: str, **limits: Any
) -> dict[str, Any]:
    body = {"scope": scope, "scope_id": scope_id, **limits}
    r = await client.post("/api/admin/budgets", json=body, headers=admin.headers)
    assert r.status_code == 201, r.text
    return dict(r.json())


async def message_rows(runtime: Runtime) -> int:
    async with runtime.engine.connect() as conn:
        return int(
            (await conn.execute(select(func.count()).select_from(tables.messages))).scalar_one()
        )


async def test_a_used_up_budget_refuses_before_the_model_is_called(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    calls: list[int] = []
    admin, user, agent_id = await setup(client, runtime, calls)
    await budget(client, admin, "user", user.id, max_tokens=150)

    for _ in range(2):  # 0 then 100 used: both start under 150 (the second ends past it)
        r = await chat(client, user, agent_id)
        assert r.status_code == 200, r.text
    assert len(calls) == 2
    before = await message_rows(runtime)

    r = await chat(client, user, agent_id)
    assert r.status_code == 402, r.text
    body = r.json()
    assert "monthly budget of this user is used up" in body["detail"]
    assert "200 of 150 tokens" in body["detail"]
    assert body["budget"]["scope_id"] == user.id and body["budget"]["used_tokens"] == 200
    assert body["budget"]["resets_at"].startswith(f"{runtime.budgets.period()}"[:4])
    assert len(calls) == 2  # the model was NOT called
    assert await message_rows(runtime) == before  # and nothing was written

    r = await client.get("/api/users/me", headers=user.headers)
    mine = r.json()["budget"]
    assert (mine["used_tokens"], mine["remaining_tokens"], mine["max_tokens"]) == (200, 0, 150)

    # an agent's budget refuses every user of the agent; lifting the user's lets the turn run
    other = await account(client, name="Bob")
    r = await client.patch(
        f"/api/agents/{agent_id}", json={"visibility": "shared"}, headers=user.headers
    )
    assert r.status_code == 200, r.text
    await runtime.acks.flush()  # the last run reaches chat_analytics with the batched flush
    agent_budget = await budget(client, admin, "agent", agent_id, max_tokens=200)
    assert agent_budget["used_tokens"] == 200  # started from this month's usage (analytics)
    r = await chat(client, other, agent_id)
    assert r.status_code == 402 and "budget of this agent" in r.json()["detail"]
    assert len(calls) == 2


async def test_a_cost_budget_starts_from_what_was_spent_this_month(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    calls: list[int] = []
    admin, user, agent_id = await setup(client, runtime, calls)
    # this month's spend, as the analytics hold it (a run priced by the provider)
    now = datetime.now(UTC)
    await runtime.documents.analytics.insert_one(
        {
            "_id": str(uuid.uuid4()),
            "user_id": user.id,
            "agent_id": agent_id,
            "model": "openai-chat:gpt-4o-mini",
            "input_tokens": 10,
            "output_tokens": 5,
            "cost": 1.25,
            "execution_time": 0.5,
            "status": "success",
            "timestamp": now,
        }
    )
    created = await budget(client, admin, "user", user.id, max_cost="1.00")
    assert Decimal(created["used_cost"]) == Decimal("1.25") and created["used_tokens"] == 15
    r = await chat(client, user, agent_id)
    assert r.status_code == 402 and "1.25 of 1 cost" in r.json()["detail"], r.text
    assert calls == []


async def test_warnings_at_80_and_100_percent_and_the_month_reset(settings: Settings) -> None:
    with webhook_server() as (url, received):
        async with app_client(settings, alert_webhook_url=url, outbound_allow_private=True) as (
            client,
            runtime,
        ):
            clock = Clock(datetime(2026, 1, 31, 22, 0, tzinfo=UTC))
            runtime.budgets.clock = clock
            calls: list[int] = []
            admin, user, agent_id = await setup(client, runtime, calls)
            await budget(client, admin, "user", user.id, max_tokens=250)

            statuses = [(await chat(client, user, agent_id)).status_code for _ in range(4)]
            assert statuses == [200, 200, 200, 402]  # 100, 200 (80%), 300 (100%), refused
            await runtime.alerts.drain()
            levels = [
                d["details"]["level"]
                async for d in runtime.documents.system_logs.find({"event": "budget.warning"}).sort(
                    "timestamp", 1
                )
            ]
            assert levels == [80, 100]
            audits = await audit_rows(runtime, "budget.warning")
            assert sorted(a["details"]["level"] for a in audits) == [80, 100]
            assert [b["level"] for b in received] == [80, 100]
            assert received[0]["scope_id"] == user.id and received[0]["period"] == "2026-01"
            assert received[1]["resets_at"] == "2026-02-01T00:00:00+00:00"

            r = await client.get("/api/users/me", headers=user.headers)
            assert r.json()["budget"]["resets_at"].startswith("2026-02-01T00:00:00")

            clock.now = datetime(2026, 2, 1, 0, 0, 1, tzinfo=UTC)  # a new month
            r = await client.get("/api/users/me", headers=user.headers)
            assert r.json()["budget"]["used_tokens"] == 0  # read as a new month already
            assert (await chat(client, user, agent_id)).status_code == 200
            r = await client.get("/api/users/me", headers=user.headers)
            mine = r.json()["budget"]
            assert (mine["used_tokens"], mine["remaining_tokens"]) == (100, 150)
            assert mine["resets_at"].startswith("2026-03-01T00:00:00")
            # crossing 80% again in the new month warns again, once
            assert (await chat(client, user, agent_id)).status_code == 200
            await runtime.alerts.drain()
            assert [b["level"] for b in received] == [80, 100, 80]
            assert received[2]["period"] == "2026-02"


async def test_a_loopback_webhook_is_refused_unless_the_operator_allows_it(
    settings: Settings,
) -> None:
    with webhook_server() as (url, received):
        async with app_client(settings, alert_webhook_url=url) as (client, runtime):
            calls: list[int] = []
            admin, user, agent_id = await setup(client, runtime, calls)
            await budget(client, admin, "user", user.id, max_tokens=100)
            assert (await chat(client, user, agent_id)).status_code == 200
            await runtime.alerts.drain()
            assert received == []  # 127.0.0.1 is not called without EV_OUTBOUND_ALLOW_PRIVATE
            assert len(await audit_rows(runtime, "budget.warning")) == 1  # still on the record


async def test_concurrent_turns_and_replays_never_count_twice(settings: Settings) -> None:
    async with app_client(settings, max_concurrent_turns=50, rate_limit_chat=1000) as (
        client,
        runtime,
    ):
        calls: list[int] = []
        admin, user, agent_id = await setup(client, runtime, calls)
        other = await account(client, name="Bob")
        r = await client.patch(
            f"/api/agents/{agent_id}", json={"visibility": "shared"}, headers=user.headers
        )
        assert r.status_code == 200
        agent_budget = await budget(client, admin, "agent", agent_id, max_tokens=10**9)
        user_budget = await budget(client, admin, "user", user.id, max_tokens=10**9)

        key = f"k-{uuid.uuid4().hex}"
        results = await asyncio.gather(
            *[chat(client, user, agent_id) for _ in range(6)],
            *[chat(client, other, agent_id) for _ in range(6)],
            *[chat(client, user, agent_id, **{"Idempotency-Key": key}) for _ in range(4)],
        )
        ok = [r for r in results if r.status_code == 200]
        assert all(r.status_code in (200, 409) for r in results), [r.status_code for r in results]
        # replays of the key after it completed
        for _ in range(3):
            r = await chat(client, user, agent_id, **{"Idempotency-Key": key})
            assert r.status_code == 200 and r.headers.get("Idempotent-Replayed") == "true"

        runs = len(calls)
        assert runs == len({r.json()["agent_message"]["id"] for r in ok})
        user_runs = runs - 6  # Bob's six all ran
        r = await client.get(f"/api/admin/budgets/{agent_budget['id']}", headers=admin.headers)
        assert r.json()["used_tokens"] == TOKENS * runs
        r = await client.get(f"/api/admin/budgets/{user_budget['id']}", headers=admin.headers)
        assert r.json()["used_tokens"] == TOKENS * user_runs


async def test_a_streamed_turn_is_refused_and_counted_like_any_other(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    calls: list[int] = []
    admin, user, agent_id = await setup(client, runtime, calls)
    created = await budget(client, admin, "user", user.id, max_tokens=1)
    stream = {**user.headers, "Accept": "text/event-stream"}
    body = {"message": "hi", "agent_id": agent_id}
    r = await client.post("/api/chat/agent", json=body, headers=stream)
    assert r.status_code == 200 and "event: done" in r.text, r.text
    async with runtime.engine.connect() as conn:
        m = tables.messages.c
        rows = await conn.execute(select(m.message_metadata).where(m.message_type == "agent"))
        spent = sum(int(meta["tokens_used"]) for (meta,) in rows)
    assert spent > 0
    r = await client.get(f"/api/admin/budgets/{created['id']}", headers=admin.headers)
    assert r.json()["used_tokens"] == spent  # counted with the reply's commit
    before = await message_rows(runtime)
    r = await client.post("/api/chat/agent", json=body, headers=stream)
    assert r.status_code == 402, r.text
    assert len(calls) == 1 and await message_rows(runtime) == before
