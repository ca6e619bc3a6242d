"""The FastAPI application."""

from __future__ import annotations

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
        runtime.start_background()
        app.state.runtime = runtime
        try:
            yield
        finally:
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
