"""``employeevirtual ARGS`` run in the test's own process (the CLI's code, without a process
start: ~3-5 s of imports on the 2-core box), with exactly the given EV_* variables. On a
thread: a command runs its own event loop. For commands that end by themselves; a command
that would become a server belongs in a process of its own (``support.server_process``)."""

from __future__ import annotations

import asyncio
import os

from typer.testing import CliRunner

from employeevirtual.cli import app

__all__ = ["run_cli_here"]


async def run_cli_here(*args: str, env: dict[str, str]) -> tuple[int, str]:
    """(exit code, output) of ``employeevirtual ARGS`` with ``env``'s EV_* variables only."""
    ev = {k: v for k, v in env.items() if k.startswith("EV_")}
    unset: dict[str, str | None] = {k: None for k in os.environ if k.startswith("EV_")}
    result = await asyncio.to_thread(
        CliRunner().invoke, app, list(args), env={**unset, **ev, "COLUMNS": "200"}
    )
    return result.exit_code, result.output
