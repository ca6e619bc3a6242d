"""The FastAPI application."""

from __future__ import annotations

import gc
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp

from employeevirtual.api.access_schemas import ProblemOut
from employeevirtual.api.errors import install_error_handlers
from employeevirtual.api.global_limit import TAKEN_WITH_THE_CHAT_LIMIT
from employeevirtual.api.limits import check_input
from employeevirtual.api.metrics import HttpMetrics
from employeevirtual.api.middleware import (
    AccessLog,
    BodySizeLimit,
    CrashGuard,
    GlobalRateLimit,
    SecurityHeaders,
)
from employeevirtual.api.openai_schemas import OPENAI_ERRORS
from employeevirtual.api.proxy import TrustedProxies, forwarded_headers
from employeevirtual.api.request_id import RequestId, install_log_record_factory
from employeevirtual.api.routes import (
    admin,
    agents,
    analytics,
    api_keys,
    auth,
    budgets,
    chat,
    conversations,
    feedback,
    health,
    knowledge,
    mcp_servers,
    memories,
    metrics,
    openai,
    people,
    rework,
    tools,
    turns,
)
from employeevirtual.api.session_data import SessionData
from employeevirtual.console import CONSOLE_CSP, mount_console
from employeevirtual.runtime.services import open_runtime
from employeevirtual.settings import Settings
from employeevirtual.stores.records import ConversationRecord

__all__ = ["create_app", "worker_app"]

UPLOAD_PATH = re.compile(r"^/api/knowledge-bases/[^/]+/documents$")

_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ProblemOut, "description": text}
    for code, text in (
        (400, "the body is not valid JSON or form data"),
        (401, "missing or invalid credentials"),
        (403, "the caller's role does not allow this"),
        (404, "not found, or not the caller's"),
        (409, "conflicts with the current state"),
        (413, "request body too large"),
        (422, "invalid input"),
        (429, "rate or concurrency limit reached; see Retry-After"),
        (503, "a store is unavailable; nothing was written"),
    )
}


class _App(FastAPI):
    """FastAPI with layers *outside* Starlette's error middleware, so that even a 500 carries
    the request id and the security headers, and an unhandled exception is logged once."""

    settings: Settings

    def build_middleware_stack(self) -> ASGIApp:
        inner = super().build_middleware_stack()
        trusted = TrustedProxies(self.settings.forwarded_allow_ips)
        # outermost first: request id (sees the real peer) -> forwarded headers (trusted
        # proxies only) -> access log -> security headers -> the last-resort 500
        app: ASGIApp = CrashGuard(inner)
        app = SecurityHeaders(app, hsts_seconds=self.settings.hsts_seconds, console_csp=CONSOLE_CSP)
        if self.settings.metrics_enabled:
            app = HttpMetrics(app)
        app = AccessLog(app)
        app = forwarded_headers(app, trusted)
        return RequestId(app, trusted=trusted)


def create_app(
    settings: Settings | None = None,
    *,
    after_turn_commit: Callable[[ConversationRecord], None] | None = None,
) -> FastAPI:
    """``after_turn_commit``: a hook run after each turn's SQL commit (tools.faults uses it)."""
    settings = settings or Settings()
    install_log_record_factory()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = await open_runtime(settings, after_turn_commit=after_turn_commit)
        runtime.start_background()
        app.state.runtime = runtime
        # Everything alive now (modules, models, pools) lives as long as the process: keep it out
        # of the cyclic GC, whose full collections otherwise walk it all and stall the event loop
        # for hundreds of ms under load.
        gc.freeze()
        # A turn holds a few thousand objects at once and frees them itself when it ends. At
        # Python's 700, nearly every turn started a collection of the youngest generation that
        # found nothing to free, and every 100th a full one: 0.3-0.5 ms of CPU a turn (issue 17).
        threshold = gc.get_threshold()
        if settings.gc_young_threshold:
            gc.set_threshold(settings.gc_young_threshold, *threshold[1:])
        try:
            yield
        finally:
            gc.set_threshold(*threshold)
            gc.unfreeze()
            await runtime.close()

    app = _App(
        title="EmployeeVirtual",
        version="0.1.0",
        description="Chat with AI virtual employees.",
        lifespan=lifespan,
        dependencies=[Depends(check_input)],
    )
    app.settings = settings
    install_error_handlers(app)
    app.include_router(health.router)
    app.include_router(metrics.router)
    for router in (
        auth.router,
        agents.router,
        chat.router,
        turns.router,
        rework.router,
        conversations.router,
        api_keys.router,
        admin.router,
        knowledge.router,
        people.router,
        analytics.router,
        budgets.router,
        feedback.router,
        tools.router,
        mcp_servers.router,
        memories.router,
    ):
        app.include_router(router, responses=_ERRORS)
    app.include_router(openai.router, responses=OPENAI_ERRORS)
    mount_console(app)  # last: every API route matches before the console's files
    # added innermost first: the body limit sits next to the app (the outer layers: _App)
    app.add_middleware(SessionData)  # the channel and client a conversation records
    app.add_middleware(
        BodySizeLimit,
        max_bytes=settings.max_body_bytes,
        # document uploads: the file limit plus room for the multipart framing
        uploads=(UPLOAD_PATH, settings.knowledge_max_file_bytes + 64 * 1024),
    )
    app.add_middleware(
        GlobalRateLimit,
        limit=settings.rate_limit_global,
        window_seconds=settings.rate_limit_window_seconds,
        taken_by_route=TAKEN_WITH_THE_CHAT_LIMIT,
    )
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_credentials=settings.cors_allow_credentials,
            allow_methods=["GET", "POST", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "X-API-Key"],
            expose_headers=[
                "Retry-After",
                "RateLimit-Limit",
                "RateLimit-Remaining",
                "RateLimit-Reset",
                "RateLimit-Policy",
            ],
        )
    return app


def worker_app() -> FastAPI:
    """The app of one ``serve --workers N`` process (uvicorn starts each with ``spawn`` and
    this factory): logging as ``serve`` sets it up, then the app from the worker's settings."""
    from employeevirtual.analytics.logs import configure_logging
    from employeevirtual.api.supervisor import stop_with_supervisor

    stop_with_supervisor()
    settings = Settings()
    configure_logging(settings.log_level, settings.log_format)
    return create_app(settings)
