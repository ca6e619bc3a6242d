"""The embedded default embedder fetches nothing: loaded in a fresh process whose sockets refuse
to connect and whose home directory is empty, it embeds, and leaves no download cache behind."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SCRIPT = """
import asyncio, socket

def refuse(*args, **kwargs):
    raise AssertionError(f"network access attempted: {args!r}")

socket.socket.connect = refuse
socket.socket.connect_ex = refuse
socket.create_connection = refuse
socket.getaddrinfo = refuse

from employeevirtual.knowledge.embedding import DEFAULT_EMBEDDING_MODEL, make_embedder

async def main():
    embedder = make_embedder(DEFAULT_EMBEDDING_MODEL)
    result = await embedder.embed_documents(["refunds within 45 days", "shipping to the Azores"])
    query = await embedder.embed_query("how long to return an item?")
    print(len(result.embeddings), len(result.embeddings[0]), len(query.embeddings[0]))
    print(embedder.model.system, embedder.model.model_name)

asyncio.run(main())
"""


def test_default_embedder_loads_from_the_wheel_without_network(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    env = {**os.environ, "HOME": str(home), "XDG_CACHE_HOME": str(home / ".cache")}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["2", "256", "256", "wordllama", "l2_supercat-256"]
    assert list(home.iterdir()) == []  # no ~/.cache/wordllama: nothing was looked for there
