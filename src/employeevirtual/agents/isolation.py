"""Run a piece of work in a separate process with a hard time limit.

The rule for built-in tools: nothing may hold the event loop or the GIL for more than a few
milliseconds. A tool that might (arithmetic on numbers a user picks, parsing input a user
controls) runs its work here: a fresh interpreter (``python -I -S`` running a module) reading
one JSON request on stdin and writing one JSON answer on stdout, killed when the time limit
passes and limited to a few CPU seconds by the kernel as a second stop. The server's loop only
awaits the pipe meanwhile; no thread, no fork of the (large, threaded) server process."""

from __future__ import annotations

import asyncio
import json
import resource
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["IsolatedError", "IsolatedTimeout", "run_isolated", "serve_one"]

# where the employeevirtual package lives: the worker starts with -I -S (no site-packages, so
# it starts in milliseconds) and may therefore import only our package and the standard library
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])
_BOOT = (
    "import runpy, sys; sys.path.insert(0, sys.argv[1]); "
    "runpy.run_module(sys.argv[2], run_name='__main__')"
)


class IsolatedTimeout(Exception):
    """The work did not finish within its time limit; its process was killed."""


class IsolatedError(Exception):
    """The work refused its input or failed; the message says why."""


async def run_isolated(
    module: str,
    request: Any,
    *,
    time_limit: float,
    path: str = _PACKAGE_ROOT,
) -> Any:
    """Run ``module`` as a script (its main calls :func:`serve_one`) on ``request``. The module
    may import only the standard library and employeevirtual modules that do the same; ``path``
    is where to find it (the package's root by default)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-I",  # isolated: no user site, no PYTHON* variables, no current directory on the path
        "-S",  # no site-packages: a fast start
        "-c",
        _BOOT,
        path,
        module,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        out, _ = await asyncio.wait_for(
            process.communicate(json.dumps(request).encode()), time_limit
        )
    except TimeoutError:
        raise IsolatedTimeout(f"no result within {time_limit:g} s; stopped") from None
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    try:
        answer = json.loads(out)
    except ValueError:
        raise IsolatedError(
            f"the worker ended without an answer (exit {process.returncode})"
        ) from None
    if answer.get("ok"):
        return answer["value"]
    raise IsolatedError(str(answer.get("error", "failed")))


def serve_one(work: Callable[[Any], Any], *, cpu_seconds: int = 2) -> None:
    """The child's side: read the request, answer ``work(request)`` or the error's message."""
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 1))
    try:
        answer = {"ok": True, "value": work(json.loads(sys.stdin.buffer.read()))}
    except Exception as exc:  # the refusal reaches the caller as text
        answer = {"ok": False, "error": str(exc) or type(exc).__name__}
    sys.stdout.write(json.dumps(answer))
    sys.stdout.flush()
