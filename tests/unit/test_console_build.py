"""The committed console build was made from the committed sources (no Node needed here:
``make console-check`` rebuilds from the lock file and compares every file, in CI)."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from employeevirtual.console import STATIC_DIR

CONSOLE = Path(__file__).resolve().parents[2] / "console"
# the same list as console/vite.config.ts
INPUTS = [
    "index.html",
    "package.json",
    "package-lock.json",
    "tsconfig.json",
    "vite.config.ts",
    "src",
]


def _source_hash() -> str:
    paths: list[Path] = []
    for name in INPUTS:
        p = CONSOLE / name
        paths += sorted(f for f in p.rglob("*") if f.is_file()) if p.is_dir() else [p]
    h = hashlib.sha256()
    for rel in sorted(p.relative_to(CONSOLE).as_posix() for p in paths):
        h.update(rel.encode() + b"\0")
        h.update((CONSOLE / rel).read_bytes())
        h.update(b"\0")
    return h.hexdigest()


def test_committed_build_matches_the_sources() -> None:
    recorded = (STATIC_DIR / "source-hash.txt").read_text().strip()
    assert recorded == _source_hash(), (
        "console/ changed since the committed build: run `make console` and commit "
        "src/employeevirtual/console/static"
    )


def test_index_references_only_files_that_exist() -> None:
    index = (STATIC_DIR / "index.html").read_text()
    refs = re.findall(r'(?:src|href)="/(assets/[^"]+)"', index)
    assert any(r.endswith(".js") for r in refs) and any(r.endswith(".css") for r in refs)
    for ref in refs:
        assert (STATIC_DIR / ref).is_file(), ref
    assert "<script>" not in index  # no inline script (the CSP would refuse it)
