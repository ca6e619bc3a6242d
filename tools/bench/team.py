"""``python -m tools.bench.team [--turns N] [--rounds R] [--quick]``: a delegated turn against
two plain turns (issue 13).

In process, on a fresh SQLite file and a SecantusDB child, through the real HTTP app
(httpx ASGI transport), with models that answer at once (FunctionModels), so what is measured
is EmployeeVirtual's own cost:

- ``plain``: one turn of an agent without delegates (one model request);
- ``two plain``: what a user does without delegation, asking agent A then agent B (two
  turns, two commits, two MongoDB writes);
- ``delegated``: one turn in which A asks its delegate B through the tool (three model
  requests: A's call, B's answer, A's answer; one commit, one MongoDB write, three
  ``chat_analytics`` documents).

Reported per turn (medians over rounds, each round interleaving the three kinds so machine
noise hits all alike): wall latency p50/p95 and the process CPU time (app, SQLite, drivers;
SecantusDB is another process and not counted)."""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelResponse,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
)
from pydantic_ai.models.function import AgentInfo, FunctionModel

from employeevirtual.main import create_app
from employeevirtual.settings import Settings
from employeevirtual.stores.mongo.secantus import SecantusServer

__all__ = ["main", "measure"]

ASKER = "openai-chat:bench-team-asker"
PLAIN = "openai-chat:bench-team-plain"


async def _asker(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    last = messages[-1]
    if isinstance(last, ModelRequest) and any(isinstance(p, ToolReturnPart) for p in last.parts):
        return ModelResponse(parts=[TextPart("the colleague says: done")])
    tool = next(t.name for t in info.function_tools if t.name.startswith("ask_"))
    return ModelResponse(parts=[ToolCallPart(tool, {"task": "do the sums"})])


async def _plain(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    return ModelResponse(parts=[TextPart("done")])


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def measure(url: str, *, turns: int, rounds: int) -> dict[str, Any]:
    """Per kind: latency p50/p95 (ms) and CPU ms per measured unit, medians over rounds."""
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            _env_file=None,
            data_dir=Path(tmp),
            mongodb_url=url,
            mongodb_database=f"bench_team_{uuid.uuid4().hex[:6]}",
            secret_key="bench-secret-key-0123456789abcdef",
            rate_limit_chat=1_000_000,
            rate_limit_global=1_000_000,
            sync_relay_enabled=False,
            analytics_rollup_seconds=0,
            metrics_enabled=False,
        )
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            runtime = app.state.runtime
            runtime.models.override(ASKER, FunctionModel(_asker, model_name=ASKER))
            runtime.models.override(PLAIN, FunctionModel(_plain, model_name=PLAIN))
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://bench") as c:
                auth = await _login(c)
                b = await _agent(c, auth, name="B", model=PLAIN)
                a_plain = await _agent(c, auth, name="A", model=PLAIN)
                a_team = await _agent(c, auth, name="Lead", model=ASKER, delegate_ids=[b])
                convs = {k: await _start(c, auth, a) for k, a in (("a", a_plain), ("b", b))}
                convs["team"] = await _start(c, auth, a_team)

                async def plain() -> None:
                    await _turn(c, auth, convs["a"])

                async def two_plain() -> None:
                    await _turn(c, auth, convs["a"])
                    await _turn(c, auth, convs["b"])

                async def delegated() -> None:
                    await _turn(c, auth, convs["team"])

                kinds = {"plain": plain, "two plain": two_plain, "delegated": delegated}
                for run in kinds.values():  # warm up
                    for _ in range(5):
                        await run()
                samples: dict[str, dict[str, list[float]]] = {
                    k: {"p50": [], "p95": [], "cpu": []} for k in kinds
                }
                for _ in range(rounds):
                    for name, run in kinds.items():
                        wall: list[float] = []
                        cpu = time.process_time()
                        for _ in range(turns):
                            t = time.perf_counter()
                            await run()
                            wall.append((time.perf_counter() - t) * 1000)
                        cpu_ms = (time.process_time() - cpu) / turns * 1000
                        samples[name]["p50"].append(_pct(wall, 0.5))
                        samples[name]["p95"].append(_pct(wall, 0.95))
                        samples[name]["cpu"].append(cpu_ms)
                # the delegated turns did delegate: one delegate run attributed per turn (the
                # runs' analytics documents are written with the turns' acks, batched)
                await runtime.acks.flush()
                delegated_runs = await runtime.documents.analytics.count_documents(
                    {"conversation_id": convs["team"], "status": "delegated"}
                )
    result: dict[str, Any] = {
        name: {key: round(statistics.median(v), 2) for key, v in values.items()}
        for name, values in samples.items()
    }
    result["delegated_runs"] = delegated_runs
    return result


async def _login(c: httpx.AsyncClient) -> dict[str, str]:
    email = f"bench-{uuid.uuid4().hex[:6]}@example.com"
    password = "a-long-unusual-passphrase-42"
    await c.post("/api/auth/register", json={"email": email, "password": password, "name": "B"})
    r = await c.post("/api/auth/login", data={"username": email, "password": password})
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


async def _agent(c: httpx.AsyncClient, auth: dict[str, str], **body: Any) -> str:
    r = await c.post("/api/agents", json=body, headers=auth)
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def _start(c: httpx.AsyncClient, auth: dict[str, str], agent_id: str) -> str:
    r = await c.post("/api/chat/agent", json={"message": "hi", "agent_id": agent_id}, headers=auth)
    assert r.status_code == 200, r.text
    return str(r.json()["conversation_id"])


async def _turn(c: httpx.AsyncClient, auth: dict[str, str], cid: str) -> None:
    r = await c.post(
        "/api/chat/agent", json={"message": "again", "conversation_id": cid}, headers=auth
    )
    assert r.status_code == 200, r.text


async def _main(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="ev-bench-team-") as tmp:
        async with SecantusServer(storage_path=tmp) as server:
            return await measure(server.url, turns=args.turns, rounds=args.rounds)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tools.bench.team")
    parser.add_argument("--turns", type=int, default=50, help="measured units per kind and round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="a smoke run (5 x 1)")
    parser.add_argument("--out", type=Path, default=Path("bench-results"))
    args = parser.parse_args()
    if args.quick:
        args.turns, args.rounds = 5, 1
    result = asyncio.run(_main(args))
    print(f"a delegated turn against two plain turns ({args.turns} x {args.rounds} rounds):")
    for name in ("plain", "two plain", "delegated"):
        r = result[name]
        print(f"  {name:>10}: p50 {r['p50']} ms, p95 {r['p95']} ms, CPU {r['cpu']} ms")
    ratio = result["delegated"]["cpu"] / result["two plain"]["cpu"]
    print(f"  delegated / two plain, CPU: {ratio:.2f}")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "team.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
