"""Concurrent clients that retry with the same Idempotency-Key, and the history they keep."""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

__all__ = ["Client", "Op", "Route", "Workload"]

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
    disconnects: int = 0  # streams the client walked away from (stream_disconnects)
    first_at: float | None = None  # loop time of the first attempt
    done_at: float | None = None  # loop time its last copy got its answer (or gave up)

    @property
    def waited(self) -> float:
        """How long the client was kept waiting for this request, retries included."""
        if self.first_at is None or self.done_at is None:
            return 0.0
        return self.done_at - self.first_at

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


@dataclass
class Route:
    """Which API process a worker's requests go to, by index into the workload's URLs. Like a
    load balancer that takes a backend out once it refuses: a request that cannot reach its
    process (refused, reset, timed out) moves the worker on to the next, for good."""

    lane: int = 0


class Workload:
    def __init__(
        self,
        base_url: str | Sequence[str],
        *,
        tag: str,
        copies: int = 1,
        request_timeout: float = 5.0,
        give_up_after: float = 45.0,
        stream: bool = False,
    ) -> None:
        self.stream = stream
        self.urls = [base_url] if isinstance(base_url, str) else list(base_url)
        self.tag = tag
        self.copies = copies
        self.request_timeout = request_timeout
        self.give_up_after = give_up_after
        self.ops: list[Op] = []
        self.served: Counter[int] = Counter()  # acknowledged answers per API process
        self.failovers = 0  # times a worker moved on from a process it could not reach
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=50)
        self.https = [
            httpx.AsyncClient(base_url=url, timeout=request_timeout, limits=limits)
            for url in self.urls
        ]

    async def close(self) -> None:
        for http in self.https:
            await http.aclose()

    def _fail_over(self, route: Route, lane: int) -> None:
        if len(self.https) > 1 and route.lane == lane:
            route.lane = lane + 1
            self.failovers += 1

    # -- set-up (before any fault) ------------------------------------------------------------

    async def client(self, lane: int = 0) -> Client:
        """A user with an agent and a first turn, set up through the API process ``lane``."""
        email = f"{self.tag}-{uuid.uuid4().hex[:8]}@example.com"
        http = self.https[lane % len(self.https)]
        r = await http.post(
            "/api/auth/register", json={"email": email, "password": PASSWORD, "name": "Fault"}
        )
        r.raise_for_status()
        r = await http.post("/api/auth/login", data={"username": email, "password": PASSWORD})
        r.raise_for_status()
        headers = {"Authorization": f"Bearer {r.json()['access_token']}"}
        r = await http.post(
            "/api/agents", json={"name": "Faulty", "instructions": "Be brief."}, headers=headers
        )
        r.raise_for_status()
        client = Client(headers, r.json()["id"])
        # a conversation every worker of it shares
        first = await self.request(client, None, Route(lane))
        if not first.acknowledged:
            raise RuntimeError(f"set-up turn failed: {first.anomalies}")
        client.shared_conversation = first.bodies[0]["conversation_id"]
        return client

    # -- the load -----------------------------------------------------------------------------

    async def worker(
        self,
        client: Client,
        *,
        stop: asyncio.Event,
        pace: float,
        limit: int = 10_000,
        route: Route | None = None,
    ) -> None:
        """Turns until ``stop``: in a conversation of its own, one in three in the conversation
        all workers of the same user share (concurrent turns in one conversation). ``route``:
        the API process it starts on (several URLs)."""
        route = route or Route()
        own: str | None = None
        for i in range(limit):
            if stop.is_set():
                return
            shared = i % 3 == 2 and client.shared_conversation is not None
            conversation = client.shared_conversation if shared else own
            op = await self.request(client, conversation, route)
            if op.acknowledged and not shared:
                own = op.bodies[0]["conversation_id"]
            await asyncio.sleep(random.uniform(0, 2 * pace))

    async def request(
        self, client: Client, conversation_id: str | None, route: Route | None = None
    ) -> Op:
        token = f"{self.tag}:{uuid.uuid4().hex}"
        op = Op(str(uuid.uuid4()), token, conversation_id, client.agent_id, copies=self.copies)
        self.ops.append(op)
        route = route or Route()
        await asyncio.gather(*(self._until_answered(client, op, route) for _ in range(self.copies)))
        if len({json.dumps(b, sort_keys=True) for b in op.bodies}) > 1:
            op.anomalies.append("two different responses for one Idempotency-Key")
        return op

    async def _until_answered(self, client: Client, op: Op, route: Route) -> None:
        if self.stream:
            loop = asyncio.get_running_loop()
            if op.first_at is None:
                op.first_at = loop.time()
            try:
                await self._stream_until_answered(client, op, route)
            finally:
                op.done_at = max(op.done_at or 0.0, loop.time())
            return
        body: dict[str, Any] = {"message": op.token}
        if op.conversation_id:
            body["conversation_id"] = op.conversation_id
        else:
            body["agent_id"] = op.agent_id
        headers = {**client.headers, "Idempotency-Key": op.key}
        loop = asyncio.get_running_loop()
        if op.first_at is None:
            op.first_at = loop.time()
        try:
            await self._attempts(op, body, headers, route)
        finally:
            op.done_at = max(op.done_at or 0.0, loop.time())

    async def _attempts(
        self, op: Op, body: dict[str, Any], headers: dict[str, str], route: Route
    ) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.give_up_after
        attempt = 0
        while loop.time() < deadline:
            attempt += 1
            op.attempts += 1
            used = route.lane
            lane = used % len(self.https)
            try:
                r = await self.https[lane].post(CHAT, json=body, headers=headers)
            except httpx.HTTPError:  # refused, reset, timed out: the server may be gone
                self._fail_over(route, used)
                await _backoff(attempt)
                continue
            if r.status_code == 200:
                op.bodies.append(r.json())
                self.served[lane] += 1
                return
            if r.status_code in RETRYABLE:
                await _backoff(attempt)
                continue
            op.anomalies.append(f"HTTP {r.status_code}: {r.text[:200]}")
            if r.status_code < 500:
                return
            await _backoff(attempt)

    async def _stream_until_answered(self, client: Client, op: Op, route: Route) -> None:
        """The turn as SSE, walking away after a random number of events, then coming back:
        either the same POST with the same Idempotency-Key (re-attach, or the stored answer
        replayed) or a resume of the turn's events from the last id seen. Acknowledged = its
        ``done`` event was read."""
        body: dict[str, Any] = {"message": op.token}
        if op.conversation_id:
            body["conversation_id"] = op.conversation_id
        else:
            body["agent_id"] = op.agent_id
        post_headers = {**client.headers, "Idempotency-Key": op.key, **_SSE}
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.give_up_after
        attempt = 0
        turn_id: str | None = None
        last_id: str | None = None
        while loop.time() < deadline:
            attempt += 1
            op.attempts += 1
            used = route.lane
            lane = used % len(self.https)
            http = self.https[lane]
            leave_after = random.choice([1, 2, 3, 5, 8, None])  # None: read to the end
            if turn_id is not None and random.random() < 0.5:
                resume = {**client.headers, **_SSE}
                if last_id:
                    resume["Last-Event-ID"] = last_id
                request = http.stream("GET", f"/api/chat/turns/{turn_id}/events", headers=resume)
            else:
                request = http.stream("POST", CHAT, json=body, headers=post_headers)
                last_id = None  # a POST replays the turn from its first event
            try:
                async with request as r:
                    if r.status_code != 200:
                        await r.aread()
                        if r.status_code in RETRYABLE or r.status_code == 404:
                            # 404: a resume raced the turn's start on another attempt
                            await _backoff(attempt)
                            continue
                        op.anomalies.append(f"HTTP {r.status_code}: {r.text[:200]}")
                        if r.status_code < 500:
                            return
                        await _backoff(attempt)
                        continue
                    seen = 0
                    async for kind, data, event_id in _events(r):
                        seen += 1
                        last_id = event_id or last_id
                        if kind == "turn" and data.get("turn_id"):
                            turn_id = data["turn_id"]
                        elif kind == "done":
                            op.bodies.append(data)
                            self.served[lane] += 1
                            return
                        elif kind == "error":
                            op.anomalies.append(f"error event: {data}")
                            return
                        if leave_after is not None and seen >= leave_after:
                            break
            except httpx.HTTPError:
                self._fail_over(route, used)
                await _backoff(attempt)
                continue
            op.disconnects += 1


_SSE = {"Accept": "text/event-stream"}


async def _events(response: httpx.Response) -> Any:
    """(event, data, id) of each SSE event; comments (heartbeats) are skipped."""
    fields: dict[str, str] = {}
    async for line in response.aiter_lines():
        if line.startswith(":"):
            continue
        if not line:
            if "data" in fields:
                yield fields.get("event", "message"), json.loads(fields["data"]), fields.get("id")
            fields = {}
            continue
        name, _, value = line.partition(":")
        fields[name] = value[1:] if value.startswith(" ") else value


async def _backoff(attempt: int) -> None:
    await asyncio.sleep(min(1.0, 0.05 * 2 ** min(attempt, 6)) * random.uniform(0.5, 1.0))
