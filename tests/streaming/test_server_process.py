"""Streamed turns against ``employeevirtual serve`` as a real process (uvicorn, the embedded
stores): the SSE comment heartbeat on the wire, and a process killed between a streamed turn's
two commits, whose failure the next process records."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import ValidationError
from sqlalchemy import Select, select

from employeevirtual.settings import Settings
from employeevirtual.stores.sql import tables
from employeevirtual.stores.sql.engine import create_engine
from support.api import PASSWORD
from support.server_process import ServerProcess
from support.sse import events

SSE = {"Accept": "text/event-stream"}
# both process tests run on one worker: they share the first process (one start, not two)
pytestmark = pytest.mark.xdist_group("server_process")


class FirstProcess:
    """The first server process of this module, started once and shared: the heartbeat test
    streams a whole turn on it, the kill test then kills it mid-turn and starts the next
    process on its data dir. Each test signs up a user of its own. A test that finds it
    killed (another order) gets a fresh one."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.server: ServerProcess | None = None

    async def get(self) -> ServerProcess:
        if self.running():
            assert self.server is not None
            return self.server
        run = self.root / uuid.uuid4().hex[:8]
        run.mkdir()
        self.server = ServerProcess(
            run / "data",
            run / "server.log",
            # the offline model pauses 0.15 s between words: a turn is "quiet" for a while
            # (the heartbeat test), and still mid-answer well after its ``turn`` event (the
            # kill test kills it then); a 0.025 s heartbeat: several between two words
            EV_STREAM_HEARTBEAT_SECONDS=0.025,
            EV_OFFLINE_STREAM_DELAY_MS=150,
        )
        await self.server.start(timeout=240)  # a loaded shared machine starts it slowly
        return self.server

    def running(self) -> bool:
        server = self.server
        return server is not None and server.proc is not None and server.proc.returncode is None

    async def close(self) -> None:
        if self.running():  # (a group long gone is never signalled: its id may be reused)
            assert self.server is not None
            await self.server.kill_group()  # nothing to check in its stop


@pytest.fixture(scope="module")
async def first_process(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[FirstProcess]:
    shared = FirstProcess(tmp_path_factory.mktemp("server-process"))
    try:
        yield shared
    finally:
        await shared.close()


async def _user_and_agent(
    http: httpx.AsyncClient, email: str = "live@example.com"
) -> tuple[dict[str, str], str]:
    r = await http.post(
        "/api/auth/register", json={"email": email, "password": PASSWORD, "name": "L"}
    )
    assert r.status_code == 201, r.text
    r = await http.post("/api/auth/login", data={"username": email, "password": PASSWORD})
    headers = {"Authorization": f"Bearer {r.json()['access_token']}"}
    r = await http.post("/api/agents", json={"name": "A", "model": "offline"}, headers=headers)
    assert r.status_code == 201, r.text
    return headers, r.json()["id"]


def test_the_default_heartbeat_is_at_most_15_seconds() -> None:
    """The contract: a keep-alive at least every 15 s unless configured otherwise, and never a
    longer interval (the process tests below shorten it through EV_STREAM_HEARTBEAT_SECONDS)."""
    field = Settings.model_fields["stream_heartbeat_seconds"]
    assert field.default <= 15
    with pytest.raises(ValidationError) as refused:
        Settings(stream_heartbeat_seconds=15.1)
    assert [e["loc"] for e in refused.value.errors()] == [("stream_heartbeat_seconds",)]


async def test_the_heartbeat_reaches_the_client_while_the_model_is_quiet(
    first_process: FirstProcess,
) -> None:
    """The offline model pauses 0.15 s between words; with a 0.025 s heartbeat the client sees
    ``: keep-alive`` comments between the deltas, and the turn still ends with ``done``."""
    server = await first_process.get()
    async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as http:
        headers, agent_id = await _user_and_agent(http, "quiet@example.com")
        body = {"message": "hello there", "agent_id": agent_id}
        got: list[str] = []
        async with http.stream(
            "POST", "/api/chat/agent", json=body, headers={**headers, **SSE}
        ) as r:
            assert r.status_code == 200
            async for event in events(r):
                got.append("heartbeat" if event is None else event.event)
    assert got[0] == "turn" and got[-1] == "done", got
    deltas = [i for i, kind in enumerate(got) if kind == "delta"]
    assert len(deltas) >= 2, got
    between = got[deltas[0] : deltas[-1]]
    # 0.15 s pauses against a 0.025 s heartbeat: several comments between each pair of words
    assert between.count("heartbeat") >= 2 * (len(deltas) - 1), got


async def _sql(data_dir: Path, query: Select[Any]) -> list[Any]:
    engine = create_engine(f"sqlite+aiosqlite:///{data_dir / 'employeevirtual.db'}")
    try:
        async with engine.connect() as conn:
            return list((await conn.execute(query)).all())
    finally:
        await engine.dispose()


async def test_a_process_killed_between_the_two_commits_gets_its_failure_recorded(
    first_process: FirstProcess, tmp_path: Path
) -> None:
    """SIGKILL once the ``turn`` event is out (the user's message committed, the model mid-
    answer): the next process on the same data dir finds the unanswered turn, records an
    ``interrupted`` error message with the counters, and the relay takes both messages to
    MongoDB; a retry then continues the conversation normally."""
    first = await first_process.get()
    data = first.data_dir
    try:
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
    m, c = tables.messages.c, tables.conversations.c
    in_conversation = m.conversation_id == uuid.UUID(cid)
    rows = await _sql(data, select(m.message_type).where(in_conversation).order_by(m.seq))
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
                    synced = await _sql(
                        data, select(c.message_count, c.synced_seq).where(c.id == uuid.UUID(cid))
                    )
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
        await second.kill_group()  # nothing to check in its stop
