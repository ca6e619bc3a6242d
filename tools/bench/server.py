"""The application under benchmark: the real app plus bench models, meters and a stats route.

Run as ``python -m tools.bench.server --port P`` (settings from ``EV_*``): the real
``create_app`` with two models served by name (``openai-chat:bench-instant`` answers at once,
``openai-chat:bench-slow`` after ``EV_BENCH_SLOW_SECONDS``), driver-level store meters, an
event-loop lag probe and ``/bench/*`` routes that report process CPU time, store time and a
pyinstrument profile of the server's own code.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import os
import pickle
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any, TextIO

from fastapi import FastAPI, Response
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart
from pydantic_ai.models.function import AgentInfo, FunctionModel

from employeevirtual.main import create_app
from employeevirtual.runtime import Runtime
from employeevirtual.settings import Settings
from tools.bench.floor import STREAM_WORDS
from tools.bench.meter import StoreMeter
from tools.bench.profile import own_code_summary

__all__ = [
    "INSTANT_ANSWER",
    "INSTANT_MODEL",
    "SLOW_ANSWER",
    "SLOW_MODEL",
    "STREAM_MODEL",
    "BenchState",
    "bench_app",
    "install_bench_models",
    "plain_app",
    "plain_app_factory",
]

log = logging.getLogger("employeevirtual.bench")  # under the app's log settings

INSTANT_MODEL = "openai-chat:bench-instant"
SLOW_MODEL = "openai-chat:bench-slow"
STREAM_MODEL = "openai-chat:bench-stream"  # 20 words at once, streamed or not
INSTANT_ANSWER = "ok"  # what the instant model answers to anything (a summary request too)
SLOW_ANSWER = "ok, slowly"

Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Any, Any], Awaitable[None]]


class BenchState:
    def __init__(self, *, slow_seconds: float) -> None:
        self.meter = StoreMeter()
        self.slow_seconds = slow_seconds
        self.model_seconds = 0.0
        self.request_seconds = 0.0
        self.requests = 0
        self.max_loop_lag = 0.0
        self.max_callback = 0.0
        self.max_gc = 0.0
        self.profiler: Any = None
        self.first_chunk_seconds = 0.0  # the stream model's own time to its first chunk
        self.first_chunks = 0
        self._starts: TextIO | None = None

    def slow_model_started(self) -> None:
        """Note when the slow model was called (wall clock, shared by the processes), in
        ``$EV_BENCH_STARTS_DIR/<pid>.txt`` when that is set: how long a burst of turns took to
        reach the model (``run._model_starts`` reads them). One line-buffered write a call."""
        directory = os.environ.get("EV_BENCH_STARTS_DIR")
        if not directory:
            return
        if self._starts is None:
            self._starts = open(os.path.join(directory, f"{os.getpid()}.txt"), "a", buffering=1)  # noqa: SIM115
        self._starts.write(f"{time.time():.6f}\n")

    def stats(self) -> dict[str, Any]:
        times = os.times()
        return {
            "cpu_seconds": times.user + times.system,
            "requests": self.requests,
            "request_seconds": self.request_seconds,
            "model_seconds": self.model_seconds,
            "max_loop_lag": self.max_loop_lag,
            "max_callback": self.max_callback,
            "max_gc": self.max_gc,
            # no object counts: gc.get_objects() walks every object (30+ ms of CPU a call) and
            # even gc.get_freeze_count() walks the frozen generation (≈6 ms at 300k objects),
            # which landed inside the CPU deltas this route measures
            "rss_bytes": _rss(),
            "first_chunk_seconds": self.first_chunk_seconds,
            "first_chunks": self.first_chunks,
            "live_turns": -1,
            "in_requests": self.meter.requests.as_dict(),
            "background": self.meter.background.as_dict(),
            "batched_analytics": dict(self.meter.batched_analytics),
        }


def _rss() -> int:
    """Resident memory of this process now (Linux), 0 elsewhere."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def install_bench_models(runtime: Runtime, state: BenchState) -> None:
    async def instant(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        # async: a sync function would be run in a worker thread by Pydantic AI
        return ModelResponse(parts=[TextPart(INSTANT_ANSWER)], model_name=INSTANT_MODEL)

    async def slow(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        state.slow_model_started()
        started = time.perf_counter()
        await asyncio.sleep(state.slow_seconds)
        state.model_seconds += time.perf_counter() - started
        return ModelResponse(parts=[TextPart(SLOW_ANSWER)], model_name=SLOW_MODEL)

    async def instant_stream(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[str]:
        yield "ok"

    async def slow_stream(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[str]:
        started = time.perf_counter()
        await asyncio.sleep(state.slow_seconds)
        state.model_seconds += time.perf_counter() - started
        yield "ok, "
        yield "slowly"

    async def words(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        return ModelResponse(parts=[TextPart("".join(STREAM_WORDS))], model_name=STREAM_MODEL)

    async def words_stream(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[str]:
        started = time.perf_counter()
        for i, word in enumerate(STREAM_WORDS):
            if i == 0:
                state.first_chunk_seconds += time.perf_counter() - started
                state.first_chunks += 1
            yield word

    runtime.models.override(
        INSTANT_MODEL,
        FunctionModel(instant, stream_function=instant_stream, model_name=INSTANT_MODEL),
    )
    runtime.models.override(
        SLOW_MODEL, FunctionModel(slow, stream_function=slow_stream, model_name=SLOW_MODEL)
    )
    runtime.models.override(
        STREAM_MODEL, FunctionModel(words, stream_function=words_stream, model_name=STREAM_MODEL)
    )


async def _probe_loop(state: BenchState, interval: float = 0.01) -> None:
    """How late a 10 ms sleep wakes up: the longest the loop was kept from running tasks."""
    while True:
        started = time.perf_counter()
        await asyncio.sleep(interval)
        state.max_loop_lag = max(state.max_loop_lag, time.perf_counter() - started - interval)


def time_callbacks(state: BenchState) -> None:
    """Time every event-loop callback (asyncio's pure-Python ``Handle``): the longest one is
    the longest the loop was blocked by a single step, as opposed to queueing behind many."""
    original = asyncio.events.Handle._run

    def _run(self: asyncio.Handle) -> None:
        started = time.perf_counter()
        original(self)
        elapsed = time.perf_counter() - started
        if elapsed > state.max_callback:
            state.max_callback = elapsed
        if elapsed > 0.2:
            task = getattr(getattr(self, "_callback", None), "__self__", None)
            coro = task.get_coro() if isinstance(task, asyncio.Task) else None
            name = getattr(coro, "__qualname__", repr(self))
            log.warning("event loop blocked %.0f ms by %s", elapsed * 1000, name)

    asyncio.events.Handle._run = _run  # type: ignore[method-assign]

    gc_started = 0.0

    def on_gc(phase: str, info: dict[str, int]) -> None:
        nonlocal gc_started
        if phase == "start":
            gc_started = time.perf_counter()
        else:
            elapsed = time.perf_counter() - gc_started
            state.max_gc = max(state.max_gc, elapsed)
            if elapsed > 0.1:
                log.warning("gc generation %d took %.0f ms", info["generation"], elapsed * 1000)

    gc.callbacks.append(on_gc)


def bench_app(settings: Settings, state: BenchState) -> FastAPI:
    state.meter.register_mongo()  # before the runtime creates its Mongo client
    app = create_app(settings)
    original = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[Any]:
        async with original(app) as value:
            runtime: Runtime = app.state.runtime
            state.meter.attach_sql(runtime.engine)
            install_bench_models(runtime, state)
            probe = asyncio.create_task(_probe_loop(state))
            try:
                yield value
            finally:
                probe.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await probe

    app.router.lifespan_context = lifespan

    @app.get("/bench/stats", include_in_schema=False)
    async def stats() -> dict[str, Any]:
        stats = state.stats()
        runtime: Runtime = app.state.runtime
        stats["live_turns"] = runtime.live.running
        # the background summary passes (memory.summaries): a seeded conversation must start
        # none but the ones a real conversation of its length would
        stats["summaries"] = asdict(runtime.memory.worker.stats) if runtime.memory else {}
        return stats

    @app.post("/bench/reset-lag", include_in_schema=False)
    async def reset_lag() -> dict[str, Any]:
        state.max_loop_lag = 0.0
        state.max_callback = 0.0
        state.max_gc = 0.0
        return {}

    @app.post("/bench/capture/start", include_in_schema=False)
    async def capture_start() -> dict[str, Any]:
        state.meter.capture = []
        return {}

    @app.post("/bench/capture/stop", include_in_schema=False)
    async def capture_stop() -> Response:
        captured, state.meter.capture = state.meter.capture or [], None
        return Response(pickle.dumps(captured), media_type="application/octet-stream")

    @app.post("/bench/profile/start", include_in_schema=False)
    async def profile_start() -> dict[str, Any]:
        from pyinstrument import Profiler

        state.profiler = Profiler(interval=0.001, async_mode="disabled")
        state.profiler.start()
        return {}

    @app.post("/bench/profile/stop", include_in_schema=False)
    async def profile_stop() -> dict[str, Any]:
        profiler, state.profiler = state.profiler, None
        if profiler is None:
            return {}
        session = profiler.stop()
        return own_code_summary(session)

    # ahead of the console's catch-all static mount, which create_app adds last
    app.router.routes.sort(key=lambda r: 0 if getattr(r, "path", "").startswith("/bench/") else 1)

    inner = app.build_middleware_stack

    def build() -> ASGIApp:
        asgi = inner()

        async def metered(scope: Scope, receive: Any, send: Any) -> None:
            if scope["type"] != "http" or scope["path"].startswith("/bench/"):
                await asgi(scope, receive, send)
                return
            started = time.perf_counter()
            with state.meter.scope():
                try:
                    await asgi(scope, receive, send)
                finally:
                    state.requests += 1
                    state.request_seconds += time.perf_counter() - started

        return metered

    app.build_middleware_stack = build  # type: ignore[method-assign]
    return app


def plain_app(settings: Settings, state: BenchState) -> FastAPI:
    """The real app with the bench's models and nothing else: no meters, no probe, no routes
    of its own. The bench reads this server's CPU time from outside (``/proc``)."""
    app = create_app(settings)
    original = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[Any]:
        async with original(app) as value:
            install_bench_models(app.state.runtime, state)
            _note_ready()
            yield value

    app.router.lifespan_context = lifespan
    return app


def _note_ready() -> None:
    """``$EV_BENCH_STARTS_DIR/ready-<pid>`` once this worker's app has started (it serves a
    moment later): the bench opens its load's connections only when every worker has one, or
    the kernel hands them all to the workers up first and keep-alive pins them there."""
    directory = os.environ.get("EV_BENCH_STARTS_DIR")
    if directory:
        Path(directory, f"ready-{os.getpid()}").touch()


def plain_app_factory() -> FastAPI:
    """For ``uvicorn --factory`` with several workers (each builds its own app)."""
    from employeevirtual.api.supervisor import stop_with_supervisor

    stop_with_supervisor()
    state = BenchState(slow_seconds=float(os.environ.get("EV_BENCH_SLOW_SECONDS", "1.0")))
    return plain_app(Settings(), state)


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument(
        "--plain",
        action="store_true",
        help="no meters; the event loop the production server picks (uvloop when installed)",
    )
    parser.add_argument("--workers", type=int, default=1, help="with --plain only")
    args = parser.parse_args()
    options: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": args.port,
        "log_level": "warning",
        "access_log": False,
        "backlog": 4096,
        "timeout_keep_alive": 120,
    }
    if args.plain:
        if args.workers > 1:
            from tools.bench_workers import command

            argv = command(port=args.port, workers=args.workers)
            os.execv(argv[0], argv)
        else:
            uvicorn.run(plain_app_factory(), loop="auto", **options)
        return
    state = BenchState(slow_seconds=float(os.environ.get("EV_BENCH_SLOW_SECONDS", "1.0")))
    app = bench_app(Settings(), state)
    time_callbacks(state)
    # pure-Python handles, so time_callbacks sees every step
    uvicorn.run(app, loop="asyncio", **options)


if __name__ == "__main__":
    main()
