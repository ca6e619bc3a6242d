"""Memory's cost (issue 18): ``python -m tools.bench.memory [--quick] [--turns N] [--out DIR]``.

The whole app in process (embedded SQLite and SecantusDB in a temporary directory, or the
stores ``EV_*`` name), an agent with memory on (20 memories about the person, so recall ranks
them) and a model that answers at once and records what it was sent. For a conversation of 10
and of 10,000 messages (seeded straight into both stores):

- turn latency (p50/p95) and store round trips per turn (statements, transactions, MongoDB
  commands, counted by the drivers), and their ratio between the two lengths;
- the context sent to the model at each length (characters and tokens): bounded by the window,
  the summary's length limit and the memories given;
- the background summary: its catch-up over a long conversation, and its cost per turn in
  steady state (summary versions, messages folded, seconds, and the store work done outside
  any request, which the summary is the main part of).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
from pydantic import SecretStr
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pymongo import AsyncMongoClient

from employeevirtual.main import create_app
from employeevirtual.runtime import Runtime
from employeevirtual.settings import Settings
from employeevirtual.stores.mongo.documents import DocumentStore
from employeevirtual.stores.sql.engine import write_transaction
from employeevirtual.stores.sql.memory import MemoryRepository, MemoryScope
from tools.bench.meter import StoreMeter, Tally
from tools.bench.seed import SeedSpec, seed_conversations

__all__ = ["MemoryPlan", "run_memory_bench"]

MODEL = "openai-chat:bench-memory"
PASSWORD = "measured-passphrase-not-a-secret-42"


@dataclass(frozen=True)
class MemoryPlan:
    lengths: tuple[int, ...] = (10, 10_000)
    turns: int = 200  # measured turns per length
    steady_samples: int = 5
    memories: int = 20

    @classmethod
    def quick(cls) -> MemoryPlan:
        return cls(turns=30, steady_samples=3)


@dataclass
class _Sent:
    """What the bench model was sent, request by request."""

    chars: list[int]
    messages: list[int]

    def add(self, messages: list[ModelMessage], info: AgentInfo) -> None:
        size = len(info.instructions or "")
        for message in messages:
            for part in message.parts:
                content = getattr(part, "content", None)
                size += len(content) if isinstance(content, str) else 0
        self.chars.append(size)
        self.messages.append(len(messages))


def _model(sent: _Sent) -> FunctionModel:
    async def reply(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        sent.add(messages, info)
        return ModelResponse(parts=[TextPart("ok")], model_name=MODEL)

    return FunctionModel(reply, model_name=MODEL)


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


def _trips(t: Tally) -> dict[str, int]:
    return {
        "sql_statements": t.sql_statements,
        "sql_transactions": t.sql_transactions,
        "mongo_commands": t.mongo_commands,
    }


async def _turn(
    client: httpx.AsyncClient, meter: StoreMeter, headers: dict[str, str], cid: UUID
) -> tuple[float, Tally]:
    with meter.scope() as tally:
        started = time.perf_counter()
        r = await client.post(
            "/api/chat/agent",
            json={"message": "How are we doing this quarter?", "conversation_id": str(cid)},
            headers=headers,
        )
        elapsed = time.perf_counter() - started
    if r.status_code != 200:
        raise RuntimeError(f"turn failed: HTTP {r.status_code} {r.text[:300]}")
    return elapsed, tally


async def _add_memories(runtime: Runtime, user_id: UUID, agent_id: UUID, n: int) -> None:
    scope = MemoryScope(user_id=user_id, agent_id=agent_id, conversation_id=None, shared=True)
    topics = ["tea", "Porto", "Fridays", "reports", "Python", "cycling", "jazz", "Acme"]
    async with write_transaction(runtime.engine) as conn:
        repo = MemoryRepository(conn)
        for i in range(n):
            await repo.add(
                memory_id=uuid.uuid4(),
                scope=scope,
                content=f"Fact {i}: likes {topics[i % len(topics)]} and quarter {i % 4 + 1}.",
                source_message_id=None,
                source_conversation_id=None,
                source_tool_call=None,
                now=datetime.now(UTC),
            )


async def run_memory_bench(settings: Settings, plan: MemoryPlan, *, log: Any = print) -> Any:
    settings = settings.model_copy(
        update={
            "sync_relay_enabled": False,  # background store work: the summaries' alone
            "sync_reconcile_seconds": 0,
            "sync_check_seconds": 0,
            "analytics_rollup_seconds": 0,
            "rate_limit_chat": 100_000_000,
            "rate_limit_global": 100_000_000,
            "memory_summary_model": settings.memory_summary_model or "offline",
        }
    )
    meter = StoreMeter()
    meter.register_mongo()
    sent = _Sent([], [])
    app = create_app(settings)
    results: dict[str, Any] = {
        "started_at": datetime.now(UTC).isoformat(),
        "plan": asdict(plan),
        "window": settings.agent_context_messages,
        "summary_max_chars": settings.memory_summary_max_chars,
        "summary_every": settings.memory_summary_every,
        "summary_model": settings.memory_summary_model,
        "memory_recall": settings.memory_recall,
    }
    async with app.router.lifespan_context(app):
        runtime: Runtime = app.state.runtime
        assert runtime.memory is not None, "memory is off (EV_MEMORY_ENABLED)"
        meter.attach_sql(runtime.engine)
        runtime.models.override(MODEL, _model(sent))
        worker = runtime.memory.worker
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 1))
        async with httpx.AsyncClient(
            transport=transport, base_url="http://bench", timeout=120
        ) as client:
            email = f"bench-{uuid.uuid4().hex[:8]}@example.com"
            r = await client.post(
                "/api/auth/register", json={"email": email, "password": PASSWORD, "name": "B"}
            )
            user_id = UUID(r.json()["id"])
            r = await client.post("/api/auth/login", data={"username": email, "password": PASSWORD})
            headers = {"Authorization": f"Bearer {r.json()['access_token']}"}
            r = await client.post(
                "/api/agents", json={"name": "Memo", "model": MODEL}, headers=headers
            )
            agent_id = UUID(r.json()["id"])
            await _add_memories(runtime, user_id, agent_id, plan.memories)
            rows: list[dict[str, Any]] = []
            # the seeder's own client, without the app's socket timeout (bulk inserts of 5,000)
            url = runtime.secantus.url if runtime.secantus else settings.mongodb_url
            assert url is not None
            mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
                url if isinstance(url, str) else url.get_secret_value(), tz_aware=True
            )
            seeder = DocumentStore(
                mongo[settings.mongodb_database], window=runtime.documents.window
            )
            for length in plan.lengths:
                log(f"seeding a conversation of {length:,} messages")
                (cid,) = await seed_conversations(
                    runtime.engine,
                    seeder,
                    SeedSpec(user_id, agent_id, "Memo", messages=length),
                )
                before = asdict(worker.stats)
                started = time.perf_counter()
                await _turn(client, meter, headers, cid)  # starts the summary's catch-up
                await worker.drain(timeout=3600)
                catch_up = {
                    "seconds": time.perf_counter() - started,
                    "versions": worker.stats.versions - before["versions"],
                    "messages": worker.stats.messages - before["messages"],
                }
                log(f"  summary caught up in {catch_up['seconds']:.2f} s")
                steady = [
                    _trips((await _turn(client, meter, headers, cid))[1])
                    for _ in range(plan.steady_samples)
                ]
                await worker.drain()
                log(f"  {plan.turns} turns")
                stats_before = asdict(worker.stats)
                background_before = Tally(**asdict(meter.background))
                sent_from = len(sent.chars)
                latencies = []
                for _ in range(plan.turns):
                    elapsed, _tally = await _turn(client, meter, headers, cid)
                    latencies.append(elapsed)
                await worker.drain()
                stats = {k: v - stats_before[k] for k, v in asdict(worker.stats).items()}
                background = Tally(
                    **{
                        k: v - getattr(background_before, k)
                        for k, v in asdict(meter.background).items()
                    }
                )
                ms = [s * 1000 for s in latencies]
                rows.append(
                    {
                        "messages_before": length,
                        "turn_ms": {
                            "p50": _pct(ms, 50),
                            "p95": _pct(ms, 95),
                            "mean": statistics.fmean(ms),
                        },
                        "round_trips_per_turn": steady[-1],
                        "round_trips_all_identical": all(s == steady[0] for s in steady),
                        "context_sent": {
                            "chars_max": max(sent.chars[sent_from:]),
                            "messages_max": max(sent.messages[sent_from:]),
                        },
                        "summary_catch_up": catch_up,
                        "summary_per_turn": {
                            "versions": stats["versions"] / plan.turns,
                            "messages_folded": stats["messages"] / plan.turns,
                            "seconds": stats["seconds"] / plan.turns,
                            "failures": stats["failures"],
                            "background_sql_statements": background.sql_statements / plan.turns,
                            "background_mongo_commands": background.mongo_commands / plan.turns,
                        },
                    }
                )
            await mongo.close()
    first, last = rows[0], rows[-1]
    results["lengths"] = rows
    results["ratio_p50"] = last["turn_ms"]["p50"] / first["turn_ms"]["p50"]
    results["ratio_p95"] = last["turn_ms"]["p95"] / first["turn_ms"]["p95"]
    results["round_trips_flat"] = first["round_trips_per_turn"] == last["round_trips_per_turn"]
    results["finished_at"] = datetime.now(UTC).isoformat()
    return results


def print_memory(results: dict[str, Any], log: Any = print) -> None:
    log(f"window {results['window']} messages, summary ≤ {results['summary_max_chars']} chars")
    for row in results["lengths"]:
        t, rt, ctx = row["turn_ms"], row["round_trips_per_turn"], row["context_sent"]
        s = row["summary_per_turn"]
        log(
            f"{row['messages_before']:>7,} msgs: turn p50 {t['p50']:.1f} ms p95 {t['p95']:.1f} ms; "
            f"SQL {rt['sql_statements']} stmts/{rt['sql_transactions']} tx, "
            f"MongoDB {rt['mongo_commands']}; context ≤ {ctx['chars_max']:,} chars "
            f"({ctx['messages_max']} messages); summary/turn {s['versions']:.2f} versions, "
            f"{s['seconds'] * 1000:.2f} ms, {s['background_sql_statements']:.2f} SQL stmts; "
            f"catch-up {row['summary_catch_up']['seconds']:.2f} s "
            f"({row['summary_catch_up']['versions']} versions)"
        )
    log(f"ratio 10,000 / 10: p50 {results['ratio_p50']:.2f}x, p95 {results['ratio_p95']:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tools.bench.memory")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--turns", type=int)
    parser.add_argument("--out", type=Path, default=Path("bench-results"))
    args = parser.parse_args()
    plan = MemoryPlan.quick() if args.quick else MemoryPlan()
    if args.turns:
        plan = MemoryPlan(plan.lengths, args.turns, plan.steady_samples, plan.memories)
    with tempfile.TemporaryDirectory(prefix="ev-memory-bench-") as tmp:
        base = Settings()
        overrides: dict[str, Any] = {
            "secret_key": SecretStr("bench-signing-key-" + uuid.uuid4().hex)
        }
        if base.database_url is None or base.mongodb_url is None:
            overrides["data_dir"] = Path(tmp) / "data"  # embedded stores: never the real ones
        results = asyncio.run(run_memory_bench(base.model_copy(update=overrides), plan))
    print_memory(results)
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = args.out / f"memory-{stamp}.json"
    path.write_text(json.dumps(results, indent=2))
    print(f"results: {path}")


if __name__ == "__main__":
    main()
