"""Streamed turns against ``employeevirtual serve`` as a real process (uvicorn, the embedded
stores): the SSE comment heartbeat on the wire, and a process killed between a streamed turn's
two commits, whose failure the next process records."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from support.api import PASSWORD
from support.server_process import ServerProcess
from support.sse import events

SSE = {"Accept": "text/event-stream"}


async def _user_and_agent(http: httpx.AsyncClient) -> tuple[dict[str, str], str]:
    email = "live@example.com"
    r = await http.post(
        "/api/auth/register", json={"email": email, "password": PASSWORD, "name": "L"}
    )
    assert r.status_code == 201, r.text
    r = await http.post("/api/auth/login", data={"username": email, "password": PASSWORD})
    headers = {"Authorization": f"Bearer {r.json()['access_token']}"}
    r = await http.post("/api/agents", json={"name": "A", "model": "offline"}, headers=headers)
    assert r.status_code == 201, r.text
    return headers, r.json()["id"]


async def test_the_heartbeat_reaches_the_client_while_the_model_is_quiet(tmp_path: Path) -> None:
    """The offline model pauses 0.6 s between words; with a 0.1 s heartbeat the client sees
    ``: keep-alive`` comments between the deltas, and the turn still ends with ``done``."""
    server = ServerProcess(
        tmp_path / "data",
        tmp_path / "server.log",
        EV_STREAM_HEARTBEAT_SECONDS=0.1,
        EV_OFFLINE_STREAM_DELAY_MS=600,
    )
    try:
        await server.start(timeout=240)  # a loaded shared machine starts it slowly
        async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as http:
            headers, agent_id = await _user_and_agent(http)
            body = {"message": "hello there", "agent_id": agent_id}
            got: list[str] = []
            async with http.stream(
                "POST", "/api/chat/agent", json=body, headers={**headers, **SSE}
            ) as r:
                assert r.status_code == 200
                async for event in events(r):
                    got.append("heartbeat" if event is None else event.event)
    finally:
        await server.close()
    assert got[0] == "turn" and got[-1] == "done", got
    deltas = [i for i, kind in enumerate(got) if kind == "delta"]
    assert len(deltas) >= 2, got
    between = got[deltas[0] : deltas[-1]]
    # 0.6 s pauses against a 0.1 s heartbeat: several comments between each pair of words
    assert between.count("heartbeat") >= 2 * (len(deltas) - 1), got


async def _sql(data_dir: Path, query: str, **params: Any) -> list[Any]:
    engine = create_async_engine(f"sqlite+aiosqlite:///{data_dir / 'employeevirtual.db'}")
    try:
        async with engine.connect() as conn:
            return list((await conn.execute(text(query), params)).all())
    finally:
        await engine.dispose()


async def test_a_process_killed_between_the_two_commits_gets_its_failure_recorded(
    tmp_path: Path,
) -> None:
    """SIGKILL once the ``turn`` event is out (the user's message committed, the model mid-
    answer): the next process on the same data dir finds the unanswered turn, records an
    ``interrupted`` error message with the counters, and the relay takes both messages to
    MongoDB; a retry then continues the conversation normally."""
    data = tmp_path / "data"
    first = ServerProcess(data, tmp_path / "server.log", EV_OFFLINE_STREAM_DELAY_MS=5000)
    try:
        await first.start(timeout=240)
        async with httpx.AsyncClient(base_url=first.base_url, timeout=60) as http:
            headers, agent_id = await _user_and_agent(http)
            body = {"message": "what is new?", "agent_id": agent_id}
            async with http.stream(
                "POST", "/api/chat/agent", json=body, headers={**headers, **SSE}
            ) as r:
                stream = events(r)
                turn = await anext(stream)
                assert turn is not None and turn.event == "turn"
                await first.kill()  # between the commits: the user's message is in SQL
    finally:
        await first.close()
    cid = turn.data["conversation_id"]
    user_message = turn.data["user_message"]
    rows = await _sql(data, "SELECT message_type FROM messages ORDER BY seq")
    assert [r[0] for r in rows] == ["user"]  # no answer, no failure record (yet)

    second = ServerProcess(
        data,
        tmp_path / "server.log",
        EV_AGENT_TIMEOUT_SECONDS=1,
        EV_INTERRUPTED_TURN_GRACE_SECONDS=1,
        EV_INTERRUPTED_TURN_SWEEP_SECONDS=0.2,
    )
    try:
        await second.start(timeout=240)
        async with httpx.AsyncClient(base_url=second.base_url, timeout=60) as http:
            r = await http.post(
                "/api/auth/login", data={"username": "live@example.com", "password": PASSWORD}
            )
            headers = {"Authorization": f"Bearer {r.json()['access_token']}"}
            async with asyncio.timeout(30):
                while True:
                    r = await http.get(f"/api/conversations/{cid}/messages", headers=headers)
                    history = r.json()["messages"]
                    synced = await _sql(data, "SELECT message_count, synced_seq FROM conversations")
                    if len(history) == 2 and synced[0][0] == synced[0][1] == 2:
                        break
                    await asyncio.sleep(0.2)
            asked, failed = history
            assert asked["id"] == user_message["id"] and asked["content"] == "what is new?"
            assert failed["message_type"] == "error" and failed["seq"] == 2
            assert failed["metadata"]["error"] == "interrupted"
            assert "interrupted" in failed["content"]
            conversation = (await http.get(f"/api/conversations/{cid}", headers=headers)).json()
            assert conversation["message_count"] == 2
            # the conversation goes on: the next turn answers, after the failure
            r = await http.post(
                "/api/chat/agent",
                json={"message": "again", "conversation_id": cid},
                headers=headers,
            )
            assert r.status_code == 200, r.text
            assert r.json()["agent_message"]["seq"] == 4
    finally:
        await second.close()
