"""The FastAPI application."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware

from employeevirtual.api.access_schemas import ProblemOut
from employeevirtual.api.errors import install_error_handlers
from employeevirtual.api.limits import reject_unknown_query_params
from employeevirtual.api.middleware import BodySizeLimit, GlobalRateLimit, SecurityHeaders
from employeevirtual.api.routes import (
    admin,
    agents,
    api_keys,
    auth,
    chat,
    conversations,
    health,
    people,
)
from employeevirtual.runtime import open_runtime
from employeevirtual.settings import Settings

__all__ = ["create_app"]

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


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = await open_runtime(settings)
        runtime.start_background()
        app.state.runtime = runtime
        # Everything alive now (modules, models, pools) lives as long as the process: keep it out
        # of the cyclic GC, whose full collections otherwise walk it all and stall the event loop
        # for hundreds of ms under load.
        gc.freeze()
        try:
            yield
        finally:
            gc.unfreeze()
            await runtime.close()

    app = FastAPI(
        title="EmployeeVirtual",
        version="0.1.0",
        description="Chat with AI virtual employees.",
        lifespan=lifespan,
        dependencies=[Depends(reject_unknown_query_params)],
    )
    install_error_handlers(app)
    app.include_router(health.router)
    for router in (
        auth.router,
        agents.router,
        chat.router,
        conversations.router,
        api_keys.router,
        admin.router,
        people.router,
    ):
        app.include_router(router, responses=_ERRORS)
    # added innermost first: headers wrap everything, the body limit sits next to the app
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(
        GlobalRateLimit,
        limit=settings.rate_limit_global,
        window_seconds=settings.rate_limit_window_seconds,
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
    app.add_middleware(SecurityHeaders, hsts_seconds=settings.hsts_seconds)
    return app
