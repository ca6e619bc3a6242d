"""One way into the relational store: outside ``stores/``, code reads through
``read_connection`` and writes through ``write_transaction``, never ``engine.begin()`` or
``engine.connect()`` (which would skip SQLite's writer queue and its read-only autocommit)."""

from __future__ import annotations

import ast
from pathlib import Path

import employeevirtual

PACKAGE = Path(employeevirtual.__file__).parent
STORES = PACKAGE / "stores"


def _engine_entries(source: str) -> list[int]:
    """Lines where ``<...>engine.begin`` / ``<...>engine.connect`` is named (called or passed)."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if not (isinstance(node, ast.Attribute) and node.attr in ("begin", "connect")):
            continue
        owner = node.value
        name = owner.id if isinstance(owner, ast.Name) else getattr(owner, "attr", "")
        if name == "engine" or name.endswith("_engine"):
            lines.append(node.lineno)
    return lines


def test_the_check_sees_what_it_forbids() -> None:
    assert _engine_entries("async with self.engine.begin() as c: pass") == [1]
    assert _engine_entries("x = runtime.engine.connect") == [1]
    assert _engine_entries("async with engine.connect() as c: pass") == [1]
    assert _engine_entries("async with write_transaction(self.engine) as c: pass") == []


def test_no_engine_begin_or_connect_outside_stores() -> None:
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if STORES in path.parents:
            continue
        for line in _engine_entries(path.read_text()):
            offenders.append(f"{path.relative_to(PACKAGE.parent)}:{line}")
    assert offenders == [], (
        "use stores.sql.engine.read_connection / write_transaction instead: " + ", ".join(offenders)
    )
