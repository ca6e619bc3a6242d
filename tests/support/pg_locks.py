"""Who waits on whom in PostgreSQL: for tests that stop a transaction between its statements
with a row another connection holds, then check the order the writers lock rows in."""

from __future__ import annotations

import asyncio

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

__all__ = ["backend_pid", "blocked_by"]


async def backend_pid(conn: AsyncConnection) -> int:
    return int((await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one())


async def blocked_by(engine: AsyncEngine, pid: int) -> int:
    """The backend waiting on a lock that ``pid`` holds, once there is one."""
    query = text("SELECT pid FROM pg_stat_activity WHERE :pid = ANY(pg_blocking_pids(pid))")
    async with asyncio.timeout(20):
        while True:
            async with engine.connect() as conn:
                waiting = (await conn.execute(query, {"pid": pid})).scalars().first()
            if waiting is not None:
                return int(waiting)
            await asyncio.sleep(0.02)
