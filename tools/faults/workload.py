"""Concurrent clients that retry with the same Idempotency-Key, and the history they keep."""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx

__all__ = ["Client", "Op", "Workload"]

CHAT = "/api/chat/agent"
PASSWORD = "jepsen-style-passphrase-42"
# another copy is running / too many at once / the database is away: retry with the same key
RETRYABLE = {409, 429, 503}


@dataclass
class Op:
    """One logical request: a key, a unique message, and every answer it got."""

    key: str
    token: str
    conversation_id: str | None
    agent_id: str
    bodies: list[dict[str, Any]] = field(default_factory=list)
    anomalies: list[str] = field(default_factory=list)
    attempts: int = 0
    copies: int = 1

    @property
    def retried(self) -> bool:
        return self.attempts > self.copies

    @property
    def acknowledged(self) -> bool:
        return bool(self.bodies)


@dataclass
class Client:
    headers: dict[str, str]
    agent_id: str
    shared_conversation: str | None = None


class Workload:
    def __init__(
        self,
        base_url: str,
        *,
        tag: str,
        copies: int = 1,
        request_timeout: float = 5.0,
        give_up_after: float = 45.0,
    ) -> None:
        self.base_url = base_url
        self.tag = tag
        self.copies = copies
        self.request_timeout = request_timeout
        self.give_up_after = give_up_after
        self.ops: list[Op] = []
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=50)
        self.http = httpx.AsyncClient(base_url=base_url, timeout=request_timeout, limits=limits)

    async def close(self) -> None:
        await self.http.aclose()

    # -- set-up (before any fault) ------------------------------------------------------------

    async def client(self) -> Client:
        email = f"{self.tag}-{uuid.uuid4().hex[:8]}@example.com"
        r = await self.http.post(
            "/api/auth/register", json={"email": email, "password": PASSWORD, "name": "Fault"}
        )
        r.raise_for_status()
        r = await self.http.post("/api/auth/login", data={"username": email, "password": PASSWORD})
        r.raise_for_status()
        headers = {"Authorization": f"Bearer {r.json()['access_token']}"}
        r = await self.http.post(
            "/api/agents", json={"name": "Faulty", "instructions": "Be brief."}, headers=headers
        )
        r.raise_for_status()
        client = Client(headers, r.json()["id"])
        first = await self.request(client, None)  # a conversation every worker of it shares
        if not first.acknowledged:
            raise RuntimeError(f"set-up turn failed: {first.anomalies}")
        client.shared_conversation = first.bodies[0]["conversation_id"]
        return client

    # -- the load -----------------------------------------------------------------------------

    async def worker(
        self, client: Client, *, stop: asyncio.Event, pace: float, limit: int = 10_000
    ) -> None:
        """Turns until ``stop``: in a conversation of its own, one in three in the conversation
        all workers of the same user share (concurrent turns in one conversation)."""
        own: str | None = None
        for i in range(limit):
            if stop.is_set():
                return
            shared = i % 3 == 2 and client.shared_conversation is not None
            op = await self.request(client, client.shared_conversation if shared else own)
            if op.acknowledged and not shared:
                own = op.bodies[0]["conversation_id"]
            await asyncio.sleep(random.uniform(0, 2 * pace))

    async def request(self, client: Client, conversation_id: str | None) -> Op:
        token = f"{self.tag}:{uuid.uuid4().hex}"
        op = Op(str(uuid.uuid4()), token, conversation_id, client.agent_id, copies=self.copies)
        self.ops.append(op)
        await asyncio.gather(*(self._until_answered(client, op) for _ in range(self.copies)))
        if len({json.dumps(b, sort_keys=True) for b in op.bodies}) > 1:
            op.anomalies.append("two different responses for one Idempotency-Key")
        return op

    async def _until_answered(self, client: Client, op: Op) -> None:
        body: dict[str, Any] = {"message": op.token}
        if op.conversation_id:
            body["conversation_id"] = op.conversation_id
        else:
            body["agent_id"] = op.agent_id
        headers = {**client.headers, "Idempotency-Key": op.key}
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.give_up_after
        attempt = 0
        while loop.time() < deadline:
            attempt += 1
            op.attempts += 1
            try:
                r = await self.http.post(CHAT, json=body, headers=headers)
            except httpx.HTTPError:  # refused, reset, timed out: the server may be gone
                await _backoff(attempt)
                continue
            if r.status_code == 200:
                op.bodies.append(r.json())
                return
            if r.status_code in RETRYABLE:
                await _backoff(attempt)
                continue
            op.anomalies.append(f"HTTP {r.status_code}: {r.text[:200]}")
            if r.status_code < 500:
                return
            await _backoff(attempt)


async def _backoff(attempt: int) -> None:
    await asyncio.sleep(min(1.0, 0.05 * 2 ** min(attempt, 6)) * random.uniform(0.5, 1.0))
