"""What an operator sees (issue 9, item 6), with real processes: a second server on a busy
data dir, a data dir that cannot be written, and ``sync check`` while ``make run`` is up."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
from pymongo import AsyncMongoClient

from support.cli import run_cli_here as run_cli
from support.embedded import EmbeddedTemplate
from support.server_process import ServerProcess, free_port, server_env

PASSWORD = "a-long-unusual-passphrase-42"


async def _one_turn(base_url: str) -> str:
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
        email = "operator@example.com"
        r = await http.post(
            "/api/auth/register", json={"email": email, "password": PASSWORD, "name": "O"}
        )
        assert r.status_code == 201, r.text
        r = await http.post("/api/auth/login", data={"username": email, "password": PASSWORD})
        headers = {"Authorization": f"Bearer {r.json()['access_token']}"}
        r = await http.post("/api/agents", json={"name": "A", "instructions": "x"}, headers=headers)
        assert r.status_code == 201, r.text
        r = await http.post(
            "/api/chat/agent", json={"message": "hi", "agent_id": r.json()["id"]}, headers=headers
        )
        assert r.status_code == 200, r.text
        return str(r.json()["conversation_id"])


async def _synced(base_url: str) -> None:
    """Until the turn's sync ack is flushed (within 0.5 s)."""
    async with httpx.AsyncClient(base_url=base_url) as http, asyncio.timeout(30):
        while True:
            sync = (await http.get("/health/ready")).json()["checks"]["sync"]
            if not sync["conversations_behind"]:
                return
            await asyncio.sleep(0.1)


async def test_busy_data_dir_and_sync_check_against_the_running_server(
    tmp_path: Path, embedded_template: EmbeddedTemplate
) -> None:
    data = tmp_path / "data"
    embedded_template.copy_into(data)  # SecantusDB's user made by an earlier start
    server = ServerProcess(data, tmp_path / "server.log", EV_SYNC_GRACE_SECONDS=0)
    await server.start()
    try:
        cli_env = server_env(data, free_port(), EV_SYNC_GRACE_SECONDS=0)

        # a second `make run` on the same data dir: one line, before touching anything
        code, out = await run_cli("serve", env=cli_env)
        assert code == 1, out
        assert f"another EmployeeVirtual server (pid {server.proc.pid if server.proc else 0})" in (
            out
        )
        assert str(data) in out
        assert "Traceback" not in out and "WiredTiger" not in out, out

        # `sync check` as the README shows it, while the server runs: it finds the server's
        # embedded SecantusDB through <data dir>/mongodb.url
        cid = await _one_turn(server.base_url)
        await _synced(server.base_url)
        code, out = await run_cli("sync", "check", env=cli_env)
        assert code == 0, out  # before: 1, the same code as "drift found"
        assert "stores agree" in out

        url = (data / "mongodb.url").read_text().strip()
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(url)
        await client["employeevirtual"].chat_messages.delete_one({"conversation_id": cid})
        await client.close()
        code, out = await run_cli("sync", "check", env=cli_env)
        assert code == 1, out  # drift
        assert "missing_messages" in out

        # could not check (MongoDB unreachable): 2, not 1
        unreachable = {
            **cli_env,
            "EV_MONGODB_URL": f"mongodb://127.0.0.1:{free_port()}/?directConnection=true",
            "EV_MONGODB_TIMEOUT_MS": "300",
        }
        code, out = await run_cli("sync", "check", env=unreachable)
        assert code == 2, out
        assert "could not check" in out
    finally:
        await server.close()


async def test_a_data_dir_that_cannot_be_written_is_named_in_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the data dir's parent should be")
    data = blocker / "data"
    code, out = await run_cli("serve", env=server_env(data, free_port()))
    assert code == 1, out
    assert f"the data directory {data} is not writable" in out
    assert "EV_DATA_DIR" in out
    assert "Traceback" not in out and "OperationalError" not in out, out
