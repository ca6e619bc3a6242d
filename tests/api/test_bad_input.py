"""Bad input answers 4xx with a message that says what to fix, and writes nothing."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from employeevirtual.runtime import Runtime
from employeevirtual.stores.sql.tables import conversations, messages
from support.api import PASSWORD, create_agent, register_and_login


async def _counts(runtime: Runtime) -> tuple[int, int, int]:
    async with runtime.engine.connect() as conn:
        sql_conversations = (
            await conn.execute(select(func.count()).select_from(conversations))
        ).scalar_one()
        sql_messages = (await conn.execute(select(func.count()).select_from(messages))).scalar_one()
    mongo_messages = await runtime.documents.messages.count_documents({})
    return sql_conversations, sql_messages, mongo_messages


@pytest.fixture
async def user_and_agent(client: httpx.AsyncClient) -> tuple[dict[str, str], dict[str, Any]]:
    headers = await register_and_login(client)
    return headers, await create_agent(client, headers)


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"message": ""}, "cannot be empty"),
        ({"message": "   \n\t "}, "cannot be empty"),
        ({"message": "x" * 32_001}, "the limit is 32000"),
        ({"message": "ola", "agent_id": "not-a-uuid"}, "UUID"),
        ({"message": "ola", "agent_id": None, "conversation_id": None}, "give agent_id"),
    ],
)
async def test_bad_chat_input_is_422_and_writes_nothing(
    client: httpx.AsyncClient,
    runtime: Runtime,
    user_and_agent: tuple[dict[str, str], dict[str, Any]],
    params: dict[str, Any],
    expected: str,
) -> None:
    headers, agent = user_and_agent
    query = {"agent_id": agent["id"], **params}
    query = {k: v for k, v in query.items() if v is not None}
    before = await _counts(runtime)
    r = await client.post("/api/chat/agent", params=query, headers=headers)
    assert r.status_code == 422, r.text
    assert expected in r.text
    # the JSON body form answers the same
    body = dict(query)
    r = await client.post("/api/chat/agent", json=body, headers=headers)
    assert r.status_code == 422, r.text
    assert await _counts(runtime) == before


async def test_unknown_agent_and_conversation_are_404(
    client: httpx.AsyncClient,
    runtime: Runtime,
    user_and_agent: tuple[dict[str, str], dict[str, Any]],
) -> None:
    headers, _ = user_and_agent
    before = await _counts(runtime)
    missing = str(uuid.uuid4())
    r = await client.post(
        "/api/chat/agent", params={"message": "ola", "agent_id": missing}, headers=headers
    )
    assert r.status_code == 404 and f"agent {missing} not found" in r.text
    r = await client.post(
        "/api/chat/agent", params={"message": "ola", "conversation_id": missing}, headers=headers
    )
    assert r.status_code == 404 and f"conversation {missing} not found" in r.text
    assert await _counts(runtime) == before


async def test_query_and_body_together_is_422(
    client: httpx.AsyncClient, user_and_agent: tuple[dict[str, str], dict[str, Any]]
) -> None:
    headers, agent = user_and_agent
    r = await client.post(
        "/api/chat/agent",
        params={"message": "ola"},
        json={"message": "ola", "agent_id": agent["id"]},
        headers=headers,
    )
    assert r.status_code == 422
    assert "either as query parameters or as a JSON body" in r.text


async def test_unknown_body_fields_are_refused(
    client: httpx.AsyncClient, user_and_agent: tuple[dict[str, str], dict[str, Any]]
) -> None:
    headers, agent = user_and_agent
    r = await client.post(
        "/api/chat/agent",
        json={"message": "ola", "agent_id": agent["id"], "seq": 7},
        headers=headers,
    )
    assert r.status_code == 422 and "seq" in r.text


@pytest.mark.parametrize(
    ("path", "params", "expected"),
    [
        ("/api/conversations", {"limit": 101}, "limit must be between 1 and 100"),
        ("/api/conversations", {"limit": 0}, "limit must be between 1 and 100"),
        ("/api/conversations", {"cursor": "garbage!"}, "cursor is not valid"),
        ("/api/conversations", {"created_after": "2026-01-01T00:00:00"}, "needs a timezone"),
        ("/api/conversations/not-a-uuid", {}, "UUID"),
    ],
)
async def test_bad_listing_parameters(
    client: httpx.AsyncClient,
    user_and_agent: tuple[dict[str, str], dict[str, Any]],
    path: str,
    params: dict[str, Any],
    expected: str,
) -> None:
    headers, _ = user_and_agent
    r = await client.get(path, params=params, headers=headers)
    assert r.status_code == 422, r.text
    assert expected in r.text


async def test_history_limits(
    client: httpx.AsyncClient, user_and_agent: tuple[dict[str, str], dict[str, Any]]
) -> None:
    headers, agent = user_and_agent
    r = await client.post(
        "/api/chat/agent", params={"message": "ola", "agent_id": agent["id"]}, headers=headers
    )
    cid = r.json()["conversation_id"]
    r = await client.get(f"/api/conversations/{cid}/messages?limit=201", headers=headers)
    assert r.status_code == 422 and "limit must be between 1 and 200" in r.text
    r = await client.get(f"/api/conversations/{cid}/messages?before=abc", headers=headers)
    assert r.status_code == 422 and "before is not valid" in r.text


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"name": "A", "model": "gpt-4o"}, "has no provider prefix"),
        ({"name": "A", "model": "nope:thing"}, "provider 'nope' is not offered"),
        ({"name": "A", "tools": ["rm_rf"]}, "valid tools are: calculator, current_datetime"),
        ({"name": "A", "instructions": "x" * 20_001}, "the limit is 20000"),
        ({"name": ""}, "at least 1 character"),
        ({"name": "A", "model_settings": {"temperature": 9}}, "less than or equal to 2"),
        ({"name": "A", "user_id": str(uuid.uuid4())}, "Extra inputs are not permitted"),
    ],
)
async def test_bad_agent_definitions(
    client: httpx.AsyncClient, body: dict[str, Any], expected: str
) -> None:
    headers = await register_and_login(client)
    r = await client.post("/api/agents", json=body, headers=headers)
    assert r.status_code == 422, r.text
    assert expected in r.text
    assert (await client.get("/api/agents", headers=headers)).json() == []


async def test_wrong_password_and_missing_token(client: httpx.AsyncClient) -> None:
    email = f"u-{uuid.uuid4().hex[:6]}@example.com"
    await client.post(
        "/api/auth/register", json={"email": email, "password": PASSWORD, "name": "U"}
    )
    r = await client.post("/api/auth/login", data={"username": email, "password": "wrong-one"})
    assert r.status_code == 401 and r.json()["detail"] == "wrong email or password"
    r = await client.get("/api/users/me")
    assert r.status_code == 401 and "missing bearer token" in r.text
    r = await client.get("/api/users/me", headers={"Authorization": "Bearer abc.def.ghi"})
    assert r.status_code == 401 and "not valid" in r.text
