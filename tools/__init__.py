"""Development tooling kept out of the product wheel: the benchmark (``python -m tools.bench``,
``make bench``) and the fault-injection harness (``python -m tools.faults``, ``make faults``).
They import ``employeevirtual``; ``employeevirtual`` never imports them."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def subprocess_env(env: dict[str, str]) -> dict[str, str]:
    """``env`` with the repository root on PYTHONPATH, so a child process finds ``tools``."""
    paths = [str(ROOT), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
    return {**env, "PYTHONPATH": os.pathsep.join(dict.fromkeys(paths))}
