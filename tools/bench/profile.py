"""Summarise a pyinstrument session as the server's own time: stores, model and idle removed."""

from __future__ import annotations

from collections import Counter
from typing import Any

__all__ = ["classify_path", "own_code_summary"]

_STORES = {
    "sql": ("/sqlalchemy/", "/aiosqlite/", "/asyncpg/", "/sqlite3/", "/aioodbc/"),
    "mongo": ("/pymongo/", "/bson/"),
}
_IDLE_FILES = ("/asyncio/runners.py", "/selectors.py", "/uvicorn/main.py", "/uvicorn/server.py")
_IDLE_FUNCTIONS = {
    "run_forever",
    "run_until_complete",
    "_run_once",
    "select",
    "poll",
    "epoll.poll",
}
_MODEL_MARKER = "/tools/bench/server.py"
_PACKAGES = (
    "employeevirtual",
    "pydantic_ai",
    "pydantic_core",
    "pydantic",
    "fastapi",
    "starlette",
    "uvicorn",
    "h11",
    "httptools",
    "anyio",
    "jwt",
    "asyncio",
    "json",
    "opentelemetry",
    "logfire",
)


def classify_path(path: str | None) -> str:
    if not path:
        return "other"
    for store, markers in _STORES.items():
        if any(m in path for m in markers):
            return store
    for package in _PACKAGES:
        if f"/{package}/" in path:
            return package
    return "other"


def own_code_summary(session: Any, *, top: int = 5) -> dict[str, Any]:
    """Seconds by kind (idle, sql, mongo, model, own) and the ``top`` own functions by self time."""
    root = session.root_frame()
    kinds: Counter[str] = Counter()
    packages: Counter[str] = Counter()
    functions: Counter[str] = Counter()

    def walk(frame: Any, caller: str = "other") -> None:
        path = frame.file_path
        kind = classify_path(path)
        if kind == "other":
            kind = caller  # builtins and the standard library count for the package calling them
        if kind in ("sql", "mongo"):
            kinds[kind] += frame.time
            return
        if path and _MODEL_MARKER in path and frame.function in ("instant", "slow"):
            kinds["model"] += frame.time
            return
        self_time = frame.total_self_time
        idle = frame.function in _IDLE_FUNCTIONS or bool(path and path.endswith(_IDLE_FILES))
        if self_time > 0:
            if idle:
                kinds["idle"] += self_time
            else:
                kinds["own"] += self_time
                packages[kind] += self_time
                where = frame.file_path_short or path or "?"
                functions[f"{frame.function} ({where}:{frame.line_no})"] += self_time
        for child in frame.children:
            if not child.is_synthetic:
                walk(child, kind)

    if root is not None:
        walk(root)
    return {
        "sampled_seconds": root.time if root is not None else 0.0,
        "by_kind": dict(kinds),
        "own_by_package": dict(packages.most_common()),
        "top_own": [{"entry": name, "seconds": t} for name, t in functions.most_common(top)],
    }
