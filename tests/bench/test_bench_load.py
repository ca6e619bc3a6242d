"""The workers step's load: a sustained rate (every client's turns back to back, each counted)
and connections opened only once every worker's app has started."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from asyncio.subprocess import PIPE
from pathlib import Path

import pytest

from tools.bench.processes import KINDS, cpu_by_kind
from tools.bench.run import _concurrency, _ready, _Served
from tools.bench.server import _note_ready


class _Load:
    """Answers every turn at once; every 7th turn with a 503. Notes each conversation's turns
    in flight."""

    def __init__(self) -> None:
        self.calls: list[uuid.UUID] = []
        self.in_flight: dict[uuid.UUID, int] = {}
        self.most_at_once = 0

    async def turn(self, conversation_id: uuid.UUID) -> tuple[float, int]:
        self.calls.append(conversation_id)
        self.in_flight[conversation_id] = self.in_flight.get(conversation_id, 0) + 1
        self.most_at_once = max(self.most_at_once, self.in_flight[conversation_id])
        await asyncio.sleep(0.001)
        self.in_flight[conversation_id] -= 1
        return 0.001, 503 if len(self.calls) % 7 == 0 else 200


async def test_every_client_runs_its_rounds_back_to_back_and_each_turn_counts(
    tmp_path: Path,
) -> None:
    load = _Load()
    conversations = [uuid.uuid4() for _ in range(5)]
    served = _Served("http://unused", os.getpid(), tmp_path)
    out = await _concurrency(load, served, conversations, 4, rounds=3)  # type: ignore[arg-type]
    assert sorted(map(str, load.calls)) == sorted(map(str, conversations[:4] * 3))
    assert load.most_at_once == 1  # one turn at a time on each conversation
    assert (out["n"], out["errors"], out["error_kinds"]) == (11, 1, ["HTTP 503"])
    assert out["throughput_per_s"] == pytest.approx(11 / out["wall_s"])
    assert out["in_flight"] == 4
    assert set(out["per_turn_ms"]["machine_by_kind"]) == {*KINDS, "exited or kernel"}


def test_a_worker_notes_its_start_beside_the_model_calls(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EV_BENCH_STARTS_DIR", str(tmp_path))
    assert _ready(tmp_path) == 0
    _note_ready()
    assert _ready(tmp_path) == 1
    assert not list(tmp_path.glob("*.txt"))  # the model calls' files (run._model_starts)


async def test_the_machines_cpu_is_split_by_kind_of_process() -> None:
    busy = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.5: pass\n"
    # the child waits on its stdin once done: a finished process's CPU is gone from /proc
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", busy + "import sys\nsys.stdin.read()\n", stdin=PIPE
    )
    before = cpu_by_kind(child.pid, None)
    for _ in range(100):
        if cpu_by_kind(child.pid, None).since(before)["server"] >= 0.4:
            break
        await asyncio.sleep(0.05)
    spent = cpu_by_kind(child.pid, None).since(before)
    assert child.stdin is not None
    child.stdin.close()
    await child.wait()
    assert set(spent) == set(KINDS)
    assert spent["server"] >= 0.4  # the child's busy loop, filed as the server's
    # a process that exits meanwhile takes its CPU with it, never below zero for its kind
    assert all(cpu >= 0 for cpu in spent.values())


async def test_connections_are_counted_per_serving_process(tmp_path: Path) -> None:
    server = await asyncio.create_subprocess_exec(
        sys.executable, "-u", "-m", "http.server", "--bind", "127.0.0.1", "0", stdout=PIPE
    )
    assert server.stdout is not None
    # "Serving HTTP on 127.0.0.1 port N …" (unbuffered: -u)
    banner = (await asyncio.wait_for(server.stdout.readline(), 30)).decode()
    port = int(banner.split(" port ")[1].split()[0])
    opened = [await asyncio.open_connection("127.0.0.1", port) for _ in range(3)]
    try:
        served = _Served(f"http://127.0.0.1:{port}", server.pid, tmp_path)
        for _ in range(100):
            if served.connections_per_worker() == [3]:
                break
            await asyncio.sleep(0.05)
        assert served.connections_per_worker() == [3]
    finally:
        for _, writer in opened:
            writer.close()
        server.terminate()
        await server.wait()
