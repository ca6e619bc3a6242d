"""Serving the console's built files."""

from __future__ import annotations

from pathlib import Path

from starlette.applications import Starlette
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

__all__ = ["CONSOLE_CSP", "STATIC_DIR", "mount_console"]

STATIC_DIR = Path(__file__).parent / "static"

# Strict but working: only this origin's scripts, styles and API; images from here or data:
# URIs (uPlot and the favicon). No inline script, no eval, no third-party origin.
CONSOLE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; font-src 'self'; manifest-src 'self'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)


class ConsoleFiles(StaticFiles):
    """Hashed assets are cached for good; index.html is revalidated on every load so a new
    release is picked up at once."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        if response.status_code < 400:
            immutable = path.startswith("assets/")
            response.headers["cache-control"] = (
                "public, max-age=31536000, immutable" if immutable else "no-cache"
            )
        return response


def mount_console(app: Starlette) -> bool:
    """Mount the console at ``/`` (after every API route, so those match first). False when
    the build is missing (a source checkout that removed it): the API works without it."""
    if not (STATIC_DIR / "index.html").is_file():
        return False
    app.mount("/", ConsoleFiles(directory=STATIC_DIR, html=True), name="console")
    return True
