"""The FastAPI application."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from employeevirtual.api.errors import install_error_handlers
from employeevirtual.api.routes import agents, auth, chat, conversations, health
from employeevirtual.runtime import open_runtime
from employeevirtual.settings import Settings

__all__ = ["create_app"]


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = await open_runtime(settings)
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
    )
    install_error_handlers(app)
    for router in (health.router, auth.router, agents.router, chat.router, conversations.router):
        app.include_router(router)
    return app
