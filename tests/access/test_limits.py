"""Every limit on what a client can grow is refused with a clear 4xx and nothing written
(rows and documents counted before and after). The agent's own budget (run time, tokens)
is the exception by design: the run has started, so invariant 1 keeps the user's message
and records the failure; those tests show exactly that record and nothing more."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart
from pydantic_ai.models.function import AgentInfo, FunctionModel

from employeevirtual.runtime import Runtime
from employeevirtual.settings import Settings
from support.access import account, app_client, counts
from support.api import create_agent


async def _user_with_agent(
    client: httpx.AsyncClient, **agent: object
) -> tuple[dict[str, str], str]:
    user = await account(client)
    return user.headers, str((await create_agent(client, user.headers, **agent))["id"])


async def test_message_size(client: httpx.AsyncClient, runtime: Runtime) -> None:
    headers, agent_id = await _user_with_agent(client)
    too_long = "x" * (runtime.settings.max_message_chars + 1)
    before = await counts(runtime)
    r = await client.post(
        "/api/chat/agent", json={"message": too_long, "agent_id": agent_id}, headers=headers
    )
    assert r.status_code == 422
    assert f"the limit is {runtime.settings.max_message_chars}" in r.json()["detail"]
    assert await counts(runtime) == before


async def test_body_size_by_content_length(settings: Settings) -> None:
    async with app_client(settings, max_body_bytes=4096) as (client, runtime):
        headers, agent_id = await _user_with_agent(client)
        before = await counts(runtime)
        body = {"message": "x" * 5000, "agent_id": agent_id}
        r = await client.post("/api/chat/agent", json=body, headers=headers)
        assert r.status_code == 413
        assert "larger than 4096 bytes" in r.json()["detail"]
        r = await client.post(
            "/api/agents", json={"name": "A", "instructions": "i" * 5000}, headers=headers
        )
        assert r.status_code == 413
        r = await client.post(
            "/api/auth/login", data={"username": "a@example.com", "password": "p" * 5000}
        )
        assert r.status_code == 413
        assert await counts(runtime) == before


async def test_chunked_body_is_cut_off_without_reading_it_all(settings: Settings) -> None:
    async with app_client(settings, max_body_bytes=4096) as (client, runtime):
        headers, agent_id = await _user_with_agent(client)
        pulled = 0

        async def chunks() -> AsyncIterator[bytes]:
            nonlocal pulled
            yield b'{"message": "'
            for _ in range(1000):  # 1000 x 1 KiB: far past the limit
                pulled += 1
                yield b"x" * 1024
            yield f'", "agent_id": "{agent_id}"}}'.encode()

        before = await counts(runtime)
        r = await client.post(
            "/api/chat/agent",
            content=chunks(),
            headers={**headers, "Content-Type": "application/json"},
        )
        assert r.status_code == 413, r.text
        assert "Content-Length" not in r.request.headers  # it really was chunked
        assert pulled <= 6, f"read {pulled} KiB of a body limited to 4 KiB"
        assert await counts(runtime) == before

        # the same body under the limit goes through, so the guard is not rejecting all streams
        async def small() -> AsyncIterator[bytes]:
            yield f'{{"message": "hi", "agent_id": "{agent_id}"}}'.encode()

        r = await client.post(
            "/api/chat/agent",
            content=small(),
            headers={**headers, "Content-Type": "application/json"},
        )
        assert r.status_code == 200, r.text


async def test_page_sizes(client: httpx.AsyncClient, runtime: Runtime) -> None:
    admin = await account(client, name="Admin")
    headers, agent_id = await _user_with_agent(client)
    r = await client.post(
        "/api/chat/agent", json={"message": "m", "agent_id": agent_id}, headers=headers
    )
    cid = r.json()["conversation_id"]
    s = runtime.settings
    for url, maximum, who in (
        ("/api/conversations", s.page_limit_max, headers),
        (f"/api/conversations/{cid}/messages", s.history_limit_max, headers),
        ("/api/admin/users", s.page_limit_max, admin.headers),
    ):
        for bad in (0, maximum + 1, 10**9):
            r = await client.get(url, params={"limit": bad}, headers=who)
            assert r.status_code == 422, (url, bad, r.text)
            assert f"between 1 and {maximum}" in r.json()["detail"]
        assert (await client.get(url, params={"limit": maximum}, headers=who)).status_code == 200


async def test_tools_per_agent_and_instructions_length(settings: Settings) -> None:
    async with app_client(settings, max_tools_per_agent=1, max_instructions_chars=100) as (
        client,
        runtime,
    ):
        headers, agent_id = await _user_with_agent(client)
        before = await counts(runtime)
        two_tools = {"name": "A", "tools": ["calculator", "current_datetime"]}
        r = await client.post("/api/agents", json=two_tools, headers=headers)
        assert r.status_code == 422
        assert "at most 1 tools per agent" in r.json()["detail"]
        r = await client.patch(
            f"/api/agents/{agent_id}", json={"tools": two_tools["tools"]}, headers=headers
        )
        assert r.status_code == 422
        for send in (
            lambda: client.post(
                "/api/agents", json={"name": "A", "instructions": "i" * 101}, headers=headers
            ),
            lambda: client.patch(
                f"/api/agents/{agent_id}", json={"instructions": "i" * 101}, headers=headers
            ),
        ):
            r = await send()
            assert r.status_code == 422
            assert "the limit is 100" in r.json()["detail"]
        assert await counts(runtime) == before
        unchanged = (await client.get(f"/api/agents/{agent_id}", headers=headers)).json()
        assert unchanged["tools"] == []
        assert unchanged["instructions"] == "Be concise."


async def test_concurrent_turns_per_user(settings: Settings) -> None:
    async with app_client(settings, max_concurrent_turns=1) as (client, runtime):
        entered, release = asyncio.Event(), asyncio.Event()

        async def blocking(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
            entered.set()
            await release.wait()
            return ModelResponse(parts=[TextPart("done")])

        runtime.models.override("test", FunctionModel(blocking))
        user = await account(client)
        agent = await create_agent(client, user.headers, model="test")
        other = await account(client, name="Otto")
        other_agent = await create_agent(client, other.headers)
        first = asyncio.create_task(
            client.post(
                "/api/chat/agent",
                json={"message": "one", "agent_id": agent["id"]},
                headers=user.headers,
            )
        )
        await asyncio.wait_for(entered.wait(), 10)
        before = await counts(runtime)
        r = await client.post(
            "/api/chat/agent",
            json={"message": "two", "agent_id": agent["id"]},
            headers=user.headers,
        )
        assert r.status_code == 429, r.text
        assert r.headers["Retry-After"] == "1"
        assert "at most 1 chat turns at once" in r.json()["detail"]
        assert await counts(runtime) == before
        # another user is not affected
        r = await client.post(
            "/api/chat/agent",
            json={"message": "hi", "agent_id": other_agent["id"]},
            headers=other.headers,
        )
        assert r.status_code == 200
        release.set()
        assert (await first).status_code == 200
        # the slot is free again
        r = await client.post(
            "/api/chat/agent",
            json={"message": "three", "agent_id": agent["id"]},
            headers=user.headers,
        )
        assert r.status_code == 200


async def test_chat_rate_limit_per_user(settings: Settings) -> None:
    async with app_client(settings, rate_limit_chat=2) as (client, runtime):
        headers, agent_id = await _user_with_agent(client)
        other_headers, other_agent = await _user_with_agent(client)
        body = {"message": "hi", "agent_id": agent_id}
        for remaining in (1, 0):
            r = await client.post("/api/chat/agent", json=body, headers=headers)
            assert r.status_code == 200
            assert r.headers["RateLimit-Limit"] == "2"
            assert r.headers["RateLimit-Remaining"] == str(remaining)
            assert r.headers["RateLimit-Policy"] == f"2;w={settings.rate_limit_window_seconds}"
        before = await counts(runtime)
        r = await client.post("/api/chat/agent", json=body, headers=headers)
        assert r.status_code == 429
        assert int(r.headers["Retry-After"]) >= 1
        assert r.headers["RateLimit-Remaining"] == "0"
        assert "at most 2 chat requests per" in r.json()["detail"]
        assert await counts(runtime) == before
        # the limit is per user
        r = await client.post(
            "/api/chat/agent",
            json={"message": "hi", "agent_id": other_agent},
            headers=other_headers,
        )
        assert r.status_code == 200


async def test_global_rate_limit_per_client_address(settings: Settings) -> None:
    async with app_client(settings, rate_limit_global=4) as (client, runtime):
        for _ in range(4):
            assert (await client.get("/api/agents")).status_code == 401
        before = await counts(runtime)
        r = await client.post(
            "/api/auth/register",
            json={"email": "late@example.com", "password": "x" * 20, "name": "L"},
        )
        assert r.status_code == 429
        assert int(r.headers["Retry-After"]) >= 1
        assert r.headers["RateLimit-Limit"] == "4"
        assert r.headers["RateLimit-Remaining"] == "0"
        assert "too many requests from your address" in r.json()["detail"]
        assert r.headers["X-Content-Type-Options"] == "nosniff"  # headers wrap the 429 too
        assert await counts(runtime) == before
        # a forged X-Forwarded-For does not buy a new budget (proxy headers are not trusted
        # unless uvicorn is told so with --proxy-headers --forwarded-allow-ips)
        r = await client.get("/api/agents", headers={"X-Forwarded-For": "192.0.2.55"})
        assert r.status_code == 429
        # health probes are exempt; another address has its own budget
        assert (await client.get("/health/live")).status_code == 200
        transport = httpx.ASGITransport(app=client._transport.app, client=("198.51.100.9", 1))  # type: ignore[attr-defined]
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c2:
            assert (await c2.get("/api/agents")).status_code == 401


async def test_the_chat_route_counts_the_global_limit_once(settings: Settings) -> None:
    """On the chat route the chat rate limit's dependency takes the global hit with its own (one
    Redis round trip); a request that never reaches it (a 401, a 422 from the input guard) is
    counted by the middleware instead. Once per request either way, refused over the limit."""
    limit, window = 100, settings.rate_limit_window_seconds
    async with app_client(settings, rate_limit_global=limit) as (client, runtime):
        headers, agent_id = await _user_with_agent(client)
        user_id = (await client.get("/api/users/me", headers=headers)).json()["id"]

        async def used(key: str = "global:ip:203.0.113.7", of: int = limit) -> int:
            peek = await runtime.limiter.hit(key, limit=of, window_seconds=window, cost=0)
            return of - peek.remaining

        chat = f"chat:user:{user_id}", settings.rate_limit_chat
        body = {"message": "hi", "agent_id": agent_id}
        start = await used()
        assert (await client.post("/api/chat/agent", json=body, headers=headers)).status_code == 200
        assert await used() == start + 1
        assert await used(*chat) == 1
        assert (await client.post("/api/chat/agent", json=body)).status_code == 401
        assert await used() == start + 2
        r = await client.post("/api/chat/agent?bogus=1", json=body, headers=headers)
        assert r.status_code == 422
        assert await used() == start + 3
        assert await used(*chat) == 1

        async def fill(address: str) -> None:
            key = f"global:ip:{address}"
            cost = limit - await used(key)
            await runtime.limiter.hit(key, limit=limit, window_seconds=window, cost=cost)

        def refused_globally(r: httpx.Response) -> None:
            assert r.status_code == 429, r.text
            assert "too many requests from your address" in r.json()["detail"]
            assert r.headers["RateLimit-Limit"] == str(limit)
            assert int(r.headers["Retry-After"]) >= 1

        await fill("203.0.113.7")
        before = await counts(runtime)
        refused_globally(await client.post("/api/chat/agent", json=body, headers=headers))
        assert await used(*chat) == 1  # refused before the chat window, as the middleware did
        # refused lately: the next request is refused before routing (no API key lookup)
        looked_up: list[str] = []

        async def lookup(plaintext: str) -> None:
            looked_up.append(plaintext)

        runtime.api_keys.authenticate = lookup  # type: ignore[method-assign]
        key = {"X-API-Key": "ev_live_" + "x" * 43}
        refused_globally(await client.post("/api/chat/agent", json=body, headers=key))
        assert looked_up == []
        # another address over its limit: the 401 the app answers becomes the 429
        await fill("198.51.100.9")
        transport = httpx.ASGITransport(app=client._transport.app, client=("198.51.100.9", 1))  # type: ignore[attr-defined]
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c2:
            refused_globally(await c2.post("/api/chat/agent", json=body))
        assert await counts(runtime) == before


async def test_agent_run_time_limit_records_the_failure(settings: Settings) -> None:
    async with app_client(settings, agent_timeout_seconds=0.2) as (client, runtime):

        async def slow(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
            await asyncio.sleep(5)
            return ModelResponse(parts=[TextPart("late")])

        runtime.models.override("test", FunctionModel(slow))
        headers, agent_id = await _user_with_agent(client, model="test")
        before = await counts(runtime)
        r = await client.post(
            "/api/chat/agent", json={"message": "q", "agent_id": agent_id}, headers=headers
        )
        assert r.status_code == 504
        assert "did not answer within 0.2 s" in r.json()["detail"]
        after = await counts(runtime)
        # exactly the failed turn: one conversation, the user's message and the error record
        assert after["messages"] - before["messages"] == 2
        assert after["conversations"] - before["conversations"] == 1
        history = await client.get(
            f"/api/conversations/{r.json()['conversation_id']}/messages", headers=headers
        )
        assert [m["message_type"] for m in history.json()["messages"]] == ["user", "error"]


async def test_tokens_per_run_limit(settings: Settings) -> None:
    async with app_client(settings, agent_max_total_tokens=5) as (client, runtime):
        headers, agent_id = await _user_with_agent(client)
        before = await counts(runtime)
        r = await client.post(
            "/api/chat/agent", json={"message": "a question", "agent_id": agent_id}, headers=headers
        )
        assert r.status_code == 422, r.text
        assert "usage limit" in r.json()["detail"]
        assert "total_tokens_limit" in r.json()["detail"]
        after = await counts(runtime)
        assert after["messages"] - before["messages"] == 2  # the user's message + the error
        history = await client.get(
            f"/api/conversations/{r.json()['conversation_id']}/messages", headers=headers
        )
        messages = history.json()["messages"]
        assert [m["message_type"] for m in messages] == ["user", "error"]
        assert messages[1]["metadata"]["error"] == "limit"
