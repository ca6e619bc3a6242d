"""``python -m tools.bench.mcp``: what a local MCP tool call adds to a turn.

The real app in process (httpx ASGI, SQLite + SecantusDB), four agents on the same
``FunctionModel`` pattern: answer at once; call the built-in ``current_datetime`` then answer;
call ``lookup_order`` on the test MCP server over Streamable HTTP (a real process on
127.0.0.1) then answer; the same over stdio (the server's kept-alive child). The built-in tool
turn makes the same two model requests as the MCP ones, so "MCP minus built-in" is what the MCP
call itself costs: latency per turn (median, p95) and CPU, this process's and the MCP server
process's. Rounds interleave the agents, so machine noise hits all alike.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shlex
import socket
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import psutil
from pydantic_ai.messages import (
    ModelMessage,
    ModelResponse,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
)
from pydantic_ai.models.function import AgentInfo, FunctionModel

from employeevirtual.main import create_app
from employeevirtual.runtime import Runtime
from employeevirtual.settings import Settings
from employeevirtual.stores.mongo.secantus import SecantusServer

SERVER = Path(__file__).resolve().parents[2] / "tests" / "support" / "mcp_server.py"
STDIO = [sys.executable, str(SERVER), "stdio"]
PASSWORD = "a-long-unusual-passphrase-42"
CONFIGS = {  # name -> (the tool the model calls, as the agent names it)
    "no tool": None,
    "built-in tool": "current_datetime",
    "MCP over HTTP": "orders/lookup_order",
    "MCP over stdio": "local/lookup_order",
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.asynccontextmanager
async def http_server() -> AsyncIterator[tuple[str, int, int]]:
    """(url, port, pid) of the test MCP server over Streamable HTTP."""
    port = _free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(SERVER),
        "http",
        str(port),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if proc.returncode is not None or time.monotonic() > deadline:
                raise RuntimeError("the MCP server did not start")
            await asyncio.sleep(0.1)
        yield f"http://127.0.0.1:{port}/mcp", port, proc.pid
    finally:
        proc.terminate()
        await proc.wait()


def _model(name: str, tool: str | None) -> FunctionModel:
    called = None if tool is None else tool.replace("/", "__")

    async def reply(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        returned = [p for p in messages[-1].parts if isinstance(p, ToolReturnPart)]
        if called is None or returned:
            return ModelResponse(parts=[TextPart("done: " + str(returned[:1]))])
        args = {"order_id": "A-1"} if "lookup" in called else {}
        return ModelResponse(parts=[ToolCallPart(called, args)])

    return FunctionModel(reply, model_name=name)


def _cpu(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            times = psutil.Process(pid).cpu_times()
            total += times.user + times.system
    return total


def _stdio_children() -> list[int]:
    return [
        p.pid
        for p in psutil.Process().children(recursive=True)
        if str(SERVER) in " ".join(p.cmdline())
    ]


async def _setup(
    c: httpx.AsyncClient, runtime: Runtime, url: str
) -> tuple[dict[str, str], dict[str, str]]:
    email = f"bench-{uuid.uuid4().hex[:6]}@example.com"
    await c.post("/api/auth/register", json={"email": email, "password": PASSWORD, "name": "B"})
    r = await c.post("/api/auth/login", data={"username": email, "password": PASSWORD})
    auth = {"Authorization": f"Bearer {r.json()['access_token']}"}
    servers: list[dict[str, Any]] = [
        {"name": "orders", "transport": "http", "url": url},
        {"name": "local", "transport": "stdio", "command": STDIO},
    ]
    for server in servers:
        r = await c.post("/api/admin/mcp-servers", json=server, headers=auth)
        assert r.status_code == 201 and r.json()["status"] == "available", r.text
    conversations: dict[str, str] = {}
    for i, (name, tool) in enumerate(CONFIGS.items()):
        model = _model(f"openai-chat:bench-mcp-{i}", tool)
        runtime.models.override(model.model_name, model)
        body: dict[str, Any] = {
            "name": name,
            "model": model.model_name,
            "tools": [tool] if tool else [],
        }
        agent = (await c.post("/api/agents", json=body, headers=auth)).json()
        r = await c.post(
            "/api/chat/agent", json={"message": "hi", "agent_id": agent["id"]}, headers=auth
        )
        assert r.status_code == 200, r.text
        conversations[name] = r.json()["conversation_id"]
    return auth, conversations


async def bench(mongodb_url: str, *, turns: int, rounds: int) -> dict[str, Any]:
    latencies: dict[str, list[float]] = {name: [] for name in CONFIGS}
    cpu: dict[str, list[float]] = {name: [] for name in CONFIGS}
    server_cpu: dict[str, list[float]] = {name: [] for name in CONFIGS}
    async with http_server() as (url, port, pid):
        with tempfile.TemporaryDirectory() as tmp:
            settings = Settings(
                _env_file=None,
                data_dir=Path(tmp),
                mongodb_url=mongodb_url,
                mongodb_database=f"bench_mcp_{uuid.uuid4().hex[:6]}",
                secret_key="bench-secret-key-0123456789abcdef",
                rate_limit_chat=1_000_000,
                rate_limit_global=1_000_000,
                sync_relay_enabled=False,
                analytics_rollup_seconds=0,
                mcp_allowed_hosts=[f"127.0.0.1:{port}"],
                mcp_allow_private=True,
                mcp_stdio_commands=[shlex.join(STDIO)],
                mcp_start_timeout_seconds=120,
            )
            app = create_app(settings)
            async with app.router.lifespan_context(app):
                runtime: Runtime = app.state.runtime
                transport = httpx.ASGITransport(app=app)
                async with httpx.AsyncClient(transport=transport, base_url="http://bench") as c:
                    auth, conversations = await _setup(c, runtime, url)
                    servers = {"MCP over HTTP": [pid], "MCP over stdio": _stdio_children()}
                    for _ in range(rounds):
                        for name, cid in conversations.items():
                            body = {"message": "again", "conversation_id": cid}
                            pids = servers.get(name, [])
                            started_cpu, started_server = time.process_time(), _cpu(pids)
                            for _ in range(turns):
                                t0 = time.perf_counter()
                                r = await c.post("/api/chat/agent", json=body, headers=auth)
                                latencies[name].append(time.perf_counter() - t0)
                                assert r.status_code == 200, r.text
                                calls = r.json()["agent_message"]["metadata"].get("tool_calls")
                                assert CONFIGS[name] is None or (
                                    (calls and "order A-1" in (calls[0]["result"] or ""))
                                    or CONFIGS[name] == "current_datetime"
                                ), calls
                            cpu[name].append((time.process_time() - started_cpu) / turns)
                            server_cpu[name].append((_cpu(pids) - started_server) / turns)
    result: dict[str, Any] = {"turns": turns, "rounds": rounds, "configs": {}}
    for name in CONFIGS:
        ms = sorted(x * 1000 for x in latencies[name])
        result["configs"][name] = {
            "latency_p50_ms": statistics.median(ms),
            "latency_p95_ms": ms[min(len(ms) - 1, int(len(ms) * 0.95))],
            "cpu_ms_per_turn": statistics.median(cpu[name]) * 1000,
            "mcp_server_cpu_ms_per_turn": statistics.median(server_cpu[name]) * 1000,
        }
    base = result["configs"]["built-in tool"]
    for name in ("MCP over HTTP", "MCP over stdio"):
        got = result["configs"][name]
        got["added_latency_p50_ms"] = got["latency_p50_ms"] - base["latency_p50_ms"]
        got["added_cpu_ms_per_turn"] = got["cpu_ms_per_turn"] - base["cpu_ms_per_turn"]
    return result


async def main(args: argparse.Namespace) -> None:
    server: SecantusServer | None = None
    url = args.mongodb_url
    if url is None:
        server = SecantusServer(storage_path=tempfile.mkdtemp(prefix="ev-bench-mcp-"))
        await server.start()
        url = server.url
    try:
        result = await bench(url, turns=args.turns, rounds=args.rounds)
    finally:
        if server is not None:
            await server.stop()
    print(f"MCP tool call cost per turn ({args.turns} turns x {args.rounds} rounds, in process)")
    print(f"   {'':<16} {'p50 ms':>8} {'p95 ms':>8} {'CPU ms':>8} {'server CPU ms':>14}")
    for name, got in result["configs"].items():
        print(
            f"   {name:<16} {got['latency_p50_ms']:8.1f} {got['latency_p95_ms']:8.1f} "
            f"{got['cpu_ms_per_turn']:8.1f} {got['mcp_server_cpu_ms_per_turn']:14.1f}"
        )
    for name in ("MCP over HTTP", "MCP over stdio"):
        got = result["configs"][name]
        print(
            f"   {name} adds {got['added_latency_p50_ms']:+.1f} ms (p50) and "
            f"{got['added_cpu_ms_per_turn']:+.1f} ms of this process's CPU to a turn, plus "
            f"{got['mcp_server_cpu_ms_per_turn']:.1f} ms in the MCP server"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m tools.bench.mcp")
    parser.add_argument("--turns", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--mongodb-url", default=None)
    parser.add_argument("--quick", action="store_true", help="5 turns, 1 round")
    parsed, _ = parser.parse_known_args()  # make bench passes the main bench's flags too
    if parsed.quick:
        parsed.turns, parsed.rounds = 5, 1
    asyncio.run(main(parsed))
