"""A server killed in the middle of an erasure (os._exit after the conversations step, as a
SIGKILL would leave it) resumes the job when it starts again, finishes it, and leaves nothing.
Until it finishes the account stays locked."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
from pymongo import AsyncMongoClient
from sqlalchemy import select

from employeevirtual.stores.mongo.documents import DocumentStore
from employeevirtual.stores.mongo.secantus import SecantusServer
from employeevirtual.stores.sql import tables
from employeevirtual.stores.sql.engine import create_engine
from support.access import account
from support.api import PASSWORD
from support.people import a_person_with_everything, scan_everything, wait_done


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env = env
        self.log = log
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self, **extra: str) -> None:
        with self.log.open("ab") as out:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "employeevirtual.cli",
                "serve",
                env={**os.environ, **self.env, **extra},
                stdout=out,
                stderr=out,
            )
        url = f"http://127.0.0.1:{self.env['EV_PORT']}/health/live"
        async with httpx.AsyncClient() as client:
            for _ in range(1200):  # a loaded machine: the app and its engines take a while
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(url)).status_code == 200:
                        return
                if self.proc.returncode is not None:
                    break
                await asyncio.sleep(0.1)
        raise AssertionError(f"server did not start: {self.log.read_text()[-3000:]}")

    async def wait_exit(self, seconds: float) -> int:
        assert self.proc is not None
        return await asyncio.wait_for(self.proc.wait(), seconds)

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), 15)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()


async def test_crash_mid_erasure_then_restart_completes_it(
    tmp_path: Path, secantus: SecantusServer
) -> None:
    run = uuid.uuid4().hex[:10]
    port = _free_port()
    sql_url = f"sqlite+aiosqlite:///{tmp_path / 'ev.db'}"
    env: dict[str, Any] = {
        "EV_DATA_DIR": str(tmp_path / "data"),
        "EV_DATABASE_URL": sql_url,
        "EV_MONGODB_URL": secantus.url,
        "EV_MONGODB_DATABASE": f"ev_crash_{run}",
        "EV_SECRET_KEY": "crash-test-" + "k" * 32,
        "EV_PORT": str(port),
        "EV_LOG_LEVEL": "WARNING",
        "EV_ERASURE_LEASE_SECONDS": "1",
        "EV_ERASURE_INTERVAL_SECONDS": "0.2",
        "EV_OFFLINE_STREAM_DELAY_MS": "0",  # the person's streamed turn answers at once
    }
    server = Server(env, tmp_path / "server.log")
    engine = create_engine(sql_url)
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(secantus.url, tz_aware=True)
    try:
        await server.start(EV_FAULT_CRASH_ERASURE_AFTER_STEP="conversations")
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            admin = await account(client, name="Admin")
            person = await a_person_with_everything(client, admin.headers)
            r = await client.request(
                "DELETE", "/api/users/me", json={"password": PASSWORD}, headers=person["headers"]
            )
            assert r.status_code == 202, r.text
            job_id = uuid.UUID(r.json()["id"])
            # the worker dies right after committing the conversations step
            assert await server.wait_exit(seconds=60) == 137

            async with engine.connect() as conn:
                job = (
                    (
                        await conn.execute(
                            select(tables.erasure_jobs).where(tables.erasure_jobs.c.id == job_id)
                        )
                    )
                    .one()
                    ._mapping
                )
                user = (
                    (
                        await conn.execute(
                            select(tables.users).where(
                                tables.users.c.id == uuid.UUID(person["uid"])
                            )
                        )
                    )
                    .one()
                    ._mapping
                )
            assert (job["status"], job["step"]) == ("running", "agents")
            assert user["is_active"] is False  # half-erased: locked out

            await server.start()  # no fault this time
            r = await client.post(
                "/api/auth/login", data={"username": person["email"], "password": PASSWORD}
            )
            assert r.status_code == 401
            done = await wait_done(client, admin.headers, str(job_id))
            assert done["status"] == "done"

        async with engine.connect() as conn:
            job = (
                (
                    await conn.execute(
                        select(tables.erasure_jobs).where(tables.erasure_jobs.c.id == job_id)
                    )
                )
                .one()
                ._mapping
            )
        assert job["attempts"] == 2 and job["user_id"] is None
        documents = DocumentStore(mongo[env["EV_MONGODB_DATABASE"]], window=50)
        after = await scan_everything(engine, documents, person["needles"], schema="empl")
        assert after == {"sql": {}, "mongo": {}}, after
    finally:
        await server.stop()
        await engine.dispose()
        await mongo.drop_database(env["EV_MONGODB_DATABASE"])
        await mongo.close()
