"""The parent process of ``employeevirtual serve --workers N``: uvicorn's supervisor, run as
``python -m employeevirtual.api.supervisor`` (``serve`` migrates, then ``exec``s this).

Why a module of its own: uvicorn starts each worker with ``spawn``, and a spawned child first
re-imports its parent's ``__main__`` and only then starts the thread that answers the
supervisor's health check. Run from the CLI, ``__main__`` was ``employeevirtual.cli`` (typer,
and through the knowledge commands Pydantic AI and LanceDB: ~7 s of CPU, 20-30 s on a busy
2-core machine), so each worker missed its first health check (5 s), was killed and spawned
again, and ``serve --workers 2`` never answered. This module imports uvicorn and the settings
only; a worker answers the health check within a second or two and imports the app after that
(``employeevirtual.main:worker_app``), while its health-check thread keeps answering."""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import multiprocessing
import os
import signal
import sys

import uvicorn

from employeevirtual.analytics.logs import configure_logging
from employeevirtual.api.request_id import install_log_record_factory
from employeevirtual.api.server import EnvGuardedHttpTools, server_options
from employeevirtual.settings import Settings

__all__ = ["WORKER_HEALTHCHECK_SECONDS", "command", "main", "stop_with_supervisor"]

_PR_SET_PDEATHSIG = 1

# How long the supervisor waits for a worker's answer to its health check before it kills and
# replaces the worker (uvicorn's default is 5 s). The answer comes from a thread of its own, so
# a slow answer means a wedged process or a machine so busy that 5 s is within its normal
# stalls (a spawned worker also starts its interpreter first): 30 s replaces a hung worker
# within half a minute and never a slow-starting one.
WORKER_HEALTHCHECK_SECONDS = 30


def command(*, host: str, port: int, workers: int) -> list[str]:
    """The argv that ``serve`` hands to ``os.execv``."""
    return [
        sys.executable,
        "-m",
        "employeevirtual.api.supervisor",
        "--host",
        host,
        "--port",
        str(port),
        "--workers",
        str(workers),
    ]


def stop_with_supervisor() -> None:
    """In a worker (Linux): SIGTERM when the supervisor dies, even by SIGKILL. Without it the
    workers of a killed supervisor kept serving the port, unsupervised, until stopped one by one;
    SIGTERM lets them drain their in-flight turns first."""
    parent = multiprocessing.parent_process()
    if sys.platform != "linux" or parent is None:
        return
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent.pid:  # it died before the signal was asked for
        os.kill(os.getpid(), signal.SIGTERM)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="employeevirtual serve --workers N")
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, required=True)
    args = parser.parse_args(argv)
    settings = Settings()
    install_log_record_factory()
    configure_logging(settings.log_level, settings.log_format)
    uvicorn.run(
        "employeevirtual.main:worker_app",
        factory=True,
        workers=args.workers,
        host=args.host,
        port=args.port,
        http=EnvGuardedHttpTools,
        timeout_worker_healthcheck=WORKER_HEALTHCHECK_SECONDS,
        **server_options(settings),
    )


if __name__ == "__main__":
    main()
