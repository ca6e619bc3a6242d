"""``python -m tools.bench.export [--sizes 1000 100000] [--out DIR]``: memory and time of a
person's export at different sizes (issue 15: memory stays flat).

Each size runs in a fresh process of its own (``--one N``) on a fresh SQLite file and a fresh
SecantusDB: the person gets N messages (100 per conversation, through the real tables and
their full-text triggers) and N/2 raw usage documents in MongoDB, then ``build_export`` writes
the ZIP while a sampler records the process's resident memory every 20 ms and tracemalloc the
Python heap's peak. Reported: the export's peak RSS above the RSS when it started, the heap
peak, the time, the ZIP's size."""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psutil
from pymongo import AsyncMongoClient
from sqlalchemy import insert

from employeevirtual.people.export import build_export
from employeevirtual.people.registry import default_registry
from employeevirtual.stores.mongo.secantus import SecantusServer
from employeevirtual.stores.sql import tables
from employeevirtual.stores.sql.engine import create_engine, write_transaction
from employeevirtual.stores.sql.migrate import upgrade

PER_CONVERSATION = 100
TEXT = (
    "Preciso revisar o orçamento da campanha de marketing e o relatório trimestral; "
    "the budget review meeting moved to Friday. "
)


async def _seed(engine: Any, db: Any, n: int) -> uuid.UUID:
    now = datetime.now(UTC)
    user_id, agent_id = uuid.uuid4(), uuid.uuid4()
    async with write_transaction(engine) as conn:
        await conn.execute(
            insert(tables.users).values(
                id=user_id,
                email="bench@example.com",
                name="Bench",
                password_hash="x",
                role="user",
                is_active=True,
                created_at=now,
            )
        )
        await conn.execute(
            insert(tables.agents).values(
                id=agent_id,
                user_id=user_id,
                name="A",
                instructions="i",
                model="offline",
                visibility="private",
                created_at=now,
            )
        )
    conversations = max(1, n // PER_CONVERSATION)
    for c in range(conversations):
        cid = uuid.uuid4()
        rows = [
            {
                "id": uuid.uuid4(),
                "conversation_id": cid,
                "seq": s + 1,
                "user_id": user_id,
                "agent_id": None if s % 2 == 0 else agent_id,
                "content": f"{TEXT}#{c}.{s}",
                "message_type": "user" if s % 2 == 0 else "agent",
                "message_metadata": {"tokens_used": 42, "model_used": "offline"},
                "created_at": now + timedelta(milliseconds=s),
                "is_edited": False,
            }
            for s in range(PER_CONVERSATION)
        ]
        async with write_transaction(engine) as conn:
            await conn.execute(
                insert(tables.conversations).values(
                    id=cid,
                    user_id=user_id,
                    agent_id=agent_id,
                    title=f"Conversa {c}",
                    status="active",
                    created_at=now,
                    last_message_at=now,
                    message_count=PER_CONVERSATION,
                    synced_seq=PER_CONVERSATION,
                )
            )
            await conn.execute(insert(tables.messages), rows)
    usage = [
        {"_id": str(uuid.uuid4()), "user_id": str(user_id), "timestamp": now, "cost": 0.001}
        for _ in range(n // 2)
    ]
    for i in range(0, len(usage), 5000):
        await db["chat_analytics"].insert_many(usage[i : i + 5000])
    return user_id


class _Sampler(threading.Thread):
    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.process = psutil.Process()
        self.peak = 0
        self.running = True

    def run(self) -> None:
        while self.running:
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(0.02)


async def _one(n: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="ev-export-bench-") as tmp:
        work = Path(tmp)
        engine = create_engine(f"sqlite+aiosqlite:///{work / 'ev.db'}")
        await upgrade(engine)
        async with SecantusServer(storage_path=str(work / "mongo")) as mongo_server:
            client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
                mongo_server.url, tz_aware=True
            )
            db = client["bench"]
            started = time.perf_counter()
            user_id = await _seed(engine, db, n)
            seeded = time.perf_counter() - started
            registry = default_registry(db)
            baseline = psutil.Process().memory_info().rss
            sampler = _Sampler()
            sampler.start()
            tracemalloc.start()
            started = time.perf_counter()
            manifest = await build_export(
                engine, registry, user_id, work / "export.zip", now=datetime.now(UTC)
            )
            seconds = time.perf_counter() - started
            _, heap_peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            sampler.running = False
            sampler.join()
            size = (work / "export.zip").stat().st_size
            await client.close()
        await engine.dispose()
    return {
        "messages": n,
        "exported_messages": manifest["counts"]["messages"],
        "usage_documents": manifest["counts"]["usage"],
        "seed_seconds": round(seeded, 1),
        "export_seconds": round(seconds, 2),
        "rss_baseline_mib": round(baseline / 2**20, 1),
        "rss_peak_above_baseline_mib": round(max(0, sampler.peak - baseline) / 2**20, 1),
        "python_heap_peak_mib": round(heap_peak / 2**20, 1),
        "zip_mib": round(size / 2**20, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tools.bench.export")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 100_000])
    parser.add_argument("--out", type=Path, default=Path("bench-results"))
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(asyncio.run(_one(args.one))))
        return
    results = []
    for n in args.sizes:
        out = subprocess.run(
            [sys.executable, "-m", "tools.bench.export", "--one", str(n)],
            check=True,
            capture_output=True,
            text=True,
        )
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(json.dumps(results[-1]))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "export.json").write_text(json.dumps(results, indent=2))
    if len(results) >= 2:
        small, large = results[0], results[-1]
        print(
            f"export memory: {small['messages']:,} messages -> "
            f"{small['rss_peak_above_baseline_mib']} MiB RSS / {small['python_heap_peak_mib']} MiB "
            f"heap; {large['messages']:,} -> {large['rss_peak_above_baseline_mib']} MiB RSS / "
            f"{large['python_heap_peak_mib']} MiB heap"
        )


if __name__ == "__main__":
    main()
