"""The bench's plain server with several worker processes: uvicorn's supervisor, exec'd by
``tools.bench.server --plain --workers N`` so that each spawned worker re-imports this light
module, not the bench server and the whole app, before it answers the supervisor's health check
(``employeevirtual.api.supervisor`` says why that matters). Outside ``tools.bench``, whose
package imports the whole bench."""

from __future__ import annotations

import argparse
import sys

import uvicorn

from employeevirtual.api.supervisor import WORKER_HEALTHCHECK_SECONDS

__all__ = ["command", "main"]


def command(*, port: int, workers: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "tools.bench_workers",
        "--port",
        str(port),
        "--workers",
        str(workers),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tools.bench_workers")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(
        "tools.bench.server:plain_app_factory",
        factory=True,
        workers=args.workers,
        loop="auto",
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        access_log=False,
        backlog=4096,
        timeout_keep_alive=120,
        timeout_worker_healthcheck=WORKER_HEALTHCHECK_SECONDS,
    )


if __name__ == "__main__":
    main()
