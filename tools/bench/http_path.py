"""``python -m tools.bench.http_path [--requests N] [--rounds R] [--profile [KEY]]``: the CPU
the HTTP layer adds to a chat turn, in process.

The real app (``create_app``: every middleware, the route's dependencies, the rate limits on the
runtime's limiter, the error handlers) with ``ChatService.turn`` replaced on this app's runtime by
one recorded outcome (a real turn's, taken once at the start), so what is left is the HTTP path:
ASGI layers, routing, FastAPI's parameters and dependencies (the bearer token, the Redis rate
limit hit when ``EV_REDIS_URL`` is set), the answer's body and headers. Each request is one call
of the ASGI app with a scope, a receive and a send of our own (no HTTP client, no server), the
JSON body the steady bench sends; ``time.process_time`` over ``requests`` calls, best of
``rounds``. The same is measured for a bare Starlette app with one route answering the same bytes
(the reference: what routing and a response cost at least).

The stores are the ``EV_*`` names' (``EV_DATABASE_URL``, ``EV_REDIS_URL``, ...), else a temporary
SQLite file and an embedded SecantusDB. Compare two checkouts by running it in each, alternating,
a few times: the machine is noisy, report ranges. ``--profile [KEY]`` prints cProfile's top
functions (sorted by KEY, ``tottime`` by default) for one round instead of timing.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import pstats
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from uuid import UUID

import uvloop
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Message

from employeevirtual.agents.definitions import AgentDraft
from employeevirtual.chat.turn import TurnOutcome
from employeevirtual.main import create_app
from employeevirtual.settings import Settings

__all__ = ["drive", "main"]

PATH = "/api/chat/agent"
ASGIApp = Callable[[dict[str, Any], Any, Any], Awaitable[None]]


def _scope(headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 50000),
        "scheme": "http",
        "method": "POST",
        "root_path": "",
        "path": PATH,
        "raw_path": PATH.encode(),
        "query_string": b"",
        "headers": headers,
        "state": {},
    }


async def drive(app: ASGIApp, headers: list[tuple[bytes, bytes]], body: bytes, n: int) -> float:
    """CPU seconds per request over ``n`` requests of ``app``; each must answer 200."""
    done = {"type": "http.request", "body": body, "more_body": False}
    gone = {"type": "http.disconnect"}
    status = 0

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    started = time.process_time()
    for _ in range(n):
        sent = False

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if sent:
                await asyncio.sleep(3600)  # the client stays until the answer is sent
                return gone
            sent = True
            return done

        await app(_scope(list(headers)), receive, send)
        if status != 200:
            raise RuntimeError(f"the request answered {status}")
    return (time.process_time() - started) / n


def _bare(answer: bytes) -> Starlette:
    async def endpoint(request: Request) -> Response:
        await request.body()
        return Response(answer, media_type="application/json")

    return Starlette(routes=[Route(PATH, endpoint, methods=["POST"])])


async def run(requests: int, rounds: int, profile: str | None) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="ev-http-path-"))
    settings = Settings(
        data_dir=tmp,
        default_model="offline",
        knowledge_parser_warm_up=False,
        rate_limit_chat=10**9,
        rate_limit_global=10**9,
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        runtime = app.state.runtime
        owner = await runtime.accounts.register(
            email=f"bench-{tmp.name}@example.com", password="a-long-bench-passphrase", name="B"
        )
        agent = await runtime.agents.create(owner, AgentDraft(name="Bench", instructions="Hi."))
        outcome: TurnOutcome = await runtime.chat.turn(
            owner, runtime.chat.request("hello", agent_id=agent.id, conversation_id=None)
        )
        conversation_id: UUID = outcome.conversation.id

        async def recorded(*_args: Any, **_kwargs: Any) -> TurnOutcome:
            return outcome

        runtime.chat.turn = recorded  # this app's runtime only: the turn is not what is measured
        token, _ = runtime.tokens.issue(owner.id)
        body = json.dumps({"message": "hello", "conversation_id": str(conversation_id)}).encode()
        headers = [
            (b"host", b"127.0.0.1:8000"),
            (b"user-agent", b"python-httpx/0.28.1"),
            (b"accept", b"*/*"),
            (b"content-type", b"application/json"),
            (b"authorization", f"Bearer {token}".encode()),
            (b"content-length", str(len(body)).encode()),
        ]
        answer = b""

        async def capture(message: Message) -> None:
            nonlocal answer
            if message["type"] == "http.response.body":
                answer += message.get("body", b"")

        await drive(app, headers, body, 50)  # warm: caches, the token, the limiter's script
        await app(_scope(headers), _once(body), capture)
        bare = _bare(answer)
        await drive(bare, headers, body, 50)
        if profile:
            profiler = cProfile.Profile()
            profiler.enable()
            await drive(app, headers, body, requests)
            profiler.disable()
            pstats.Stats(profiler).sort_stats(profile).print_stats(60)
            return
        ours, ref = [], []
        for _ in range(rounds):
            ours.append(await drive(app, headers, body, requests))
            ref.append(await drive(bare, headers, body, requests))
        print(
            f"app: best {min(ours) * 1e6:.0f} µs per request "
            f"(rounds {', '.join(f'{t * 1e6:.0f}' for t in ours)})"
        )
        print(
            f"bare Starlette: best {min(ref) * 1e6:.0f} µs per request "
            f"(rounds {', '.join(f'{t * 1e6:.0f}' for t in ref)})"
        )


def _once(body: bytes) -> Callable[[], Awaitable[dict[str, Any]]]:
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            await asyncio.sleep(3600)
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tools.bench.http_path")
    parser.add_argument("--requests", type=int, default=2000, help="requests per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--profile",
        nargs="?",
        const="tottime",
        help="cProfile one round instead, sorted by this key (tottime; cumulative, ...)",
    )
    args = parser.parse_args()
    uvloop.run(run(args.requests, args.rounds, args.profile))


if __name__ == "__main__":
    main()
