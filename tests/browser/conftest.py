"""Browser suite: on when ``EV_TEST_BROWSER=1`` (``.ci/run`` sets it and installs Debian's
``chromium``). Asked for and Chromium missing: the suite fails, it never skips."""

from __future__ import annotations

import os
import shlex
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from harness import CHROMIUM, SCREENSHOTS, Api, ConsoleServer, launch_args
from playwright.sync_api import Browser, BrowserContext, Dialog, Page, Playwright, sync_playwright

from support.mcp_process import STDIO_COMMAND

ASKED = os.environ.get("EV_TEST_BROWSER", "") not in ("", "0")


@pytest.fixture(autouse=True)
def hang_guard() -> None:
    """Overrides the suite's async hang guard here: Playwright's sync API runs its own event loop,
    inside which pytest-asyncio cannot start the guard's (every test would error in setup). A
    browser test cannot hang silently anyway: every Playwright wait has a 20 s timeout."""


@pytest.fixture(scope="session")
def chromium() -> str:
    if not ASKED:
        pytest.skip("browser suite off: set EV_TEST_BROWSER=1 (needs Debian's chromium)")
    if not (os.access(CHROMIUM, os.X_OK) or shutil.which(CHROMIUM)):
        pytest.fail(f"EV_TEST_BROWSER is set but {CHROMIUM} is missing: apt-get install chromium")
    return CHROMIUM


@pytest.fixture(scope="session")
def console(chromium: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleServer]:
    """One real server for the suite; its first account (made here) is the admin."""
    server = ConsoleServer(
        tmp_path_factory.mktemp("console"),
        # many browser sessions come from one address and seed conversations quickly
        EV_RATE_LIMIT_GLOBAL="100000",
        EV_RATE_LIMIT_CHAT="100000",
        # an answer takes ~1 s, so a browser on a busy machine still sees it grow word by word
        EV_OFFLINE_STREAM_DELAY_MS="100",
        # a provider that cannot be reached (a closed port), for the failed-turn test
        EV_OPENAI_BASE_URL="http://127.0.0.1:9/v1",
        EV_OPENAI_API_KEY="not-a-real-key",
        EV_MODEL_MAX_RETRIES="0",
        # the test MCP server (tests/support/mcp_server.py) as a stdio child an admin registers
        EV_MCP_STDIO_COMMANDS=shlex.join(STDIO_COMMAND),
        EV_MCP_START_TIMEOUT_SECONDS="120",
        EV_MCP_CATALOG_SECONDS="0",
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def admin(console: ConsoleServer) -> Iterator[Api]:
    api = Api(console.url).register("Admin", email="admin@example.com")
    assert api.call("GET", "/api/users/me")["role"] == "admin"
    yield api
    api.close()


@pytest.fixture
def api(console: ConsoleServer, admin: Api) -> Iterator[Api]:
    """A fresh ordinary user (the admin exists first)."""
    a = Api(console.url).register("Bia")
    yield a
    a.close()


class _SharedBrowser:
    """One Playwright driver and one Chromium for the whole directory, started by its first test
    and closed right after its last one (``pytest_runtest_teardown`` below): not a session
    fixture, because Playwright's sync API keeps its own event loop running while it is open,
    which pytest-asyncio's tests (run after this directory on the same worker) must not find.
    Each test still gets fresh browser contexts (``page``, ``browser_context_factory``)."""

    def __init__(self) -> None:
        self._playwright: Any = None  # the sync_playwright() context manager
        self.browser: Browser | None = None

    def get(self, chromium: str) -> Browser:
        if self.browser is None:
            self._playwright = sync_playwright()
            p: Playwright = self._playwright.__enter__()
            self.browser = p.chromium.launch(executable_path=chromium, args=launch_args())
        return self.browser

    def close(self) -> None:
        browser, driver = self.browser, self._playwright
        self.browser = self._playwright = None
        try:
            if browser is not None:
                browser.close()
        finally:
            if driver is not None:
                driver.__exit__(None, None, None)


_SHARED = _SharedBrowser()
_HERE = Path(__file__).parent


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """After the directory's last test (on this worker), the browser closes with the test's
    module: after the test's own fixtures (its contexts), before the session's (async) ones."""
    if nextitem is None or _HERE not in nextitem.path.parents:
        module = item.getparent(pytest.Module)
        assert module is not None
        module.addfinalizer(_SHARED.close)


@pytest.fixture
def browser(chromium: str) -> Browser:
    return _SHARED.get(chromium)


@pytest.fixture
def page(browser: Browser, console: ConsoleServer) -> Iterator[Page]:
    context = browser.new_context(
        base_url=console.url, viewport={"width": 1280, "height": 800}, locale="en-US"
    )
    p = context.new_page()
    p.set_default_timeout(20_000)
    problems: list[str] = []
    p.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    # console errors (a CSP violation is one) are problems; an HTTP error status the test
    # provoked on purpose (Chromium logs "Failed to load resource") is not
    p.on(
        "console",
        lambda m: (
            problems.append(m.text)
            if m.type == "error" and not m.text.startswith("Failed to load resource")
            else None
        ),
    )
    p.on("dialog", lambda d: _dialog(d, problems))
    p.problems = problems  # type: ignore[attr-defined]
    yield p
    context.close()


def _dialog(dialog: Dialog, problems: list[str]) -> None:
    """The console's own "delete for good?" confirmations are accepted; any other dialog
    (an ``alert`` a script managed to run) is recorded as a problem."""
    if dialog.type == "confirm":
        dialog.accept()
    else:
        problems.append(f"{dialog.type} dialog: {dialog.message}")
        dialog.dismiss()


@pytest.fixture(scope="session")
def screenshots() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS


@pytest.fixture
def console_url(console: ConsoleServer) -> str:
    return console.url


@pytest.fixture
def browser_context_factory(
    browser: Browser, console: ConsoleServer
) -> Iterator[Callable[..., Page]]:
    """Pages with their own viewport/locale (phone width, another language)."""
    contexts: list[BrowserContext] = []

    def make(**options: Any) -> Page:
        context = browser.new_context(base_url=console.url, **options)
        contexts.append(context)
        p = context.new_page()
        p.set_default_timeout(20_000)
        return p

    yield make
    for c in contexts:
        c.close()
