"""Real stores for every test: SQLite (and PostgreSQL when EV_TEST_POSTGRES_URL is set), one
SecantusDB server per session, a fresh schema/database per test (a copy of the schema migrated
once per session: ``support.schema_copy``). No mocks of our own stores."""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher
from pydantic_ai import models as pydantic_ai_models
from pymongo import AsyncMongoClient
from sqlalchemy import text

from employeevirtual.main import create_app
from employeevirtual.runtime import Runtime
from employeevirtual.security import passwords
from employeevirtual.settings import Settings
from employeevirtual.stores.mongo.secantus import SecantusServer
from employeevirtual.stores.sql.engine import create_engine
from support.embedded import EmbeddedTemplate
from support.hang_guard import HangGuard
from support.schema_copy import PostgresTemplate, SqliteTemplate

pydantic_ai_models.ALLOW_MODEL_REQUESTS = False  # a test never reaches a real provider

# Apps inside the test process hash passwords with a cheap Argon2id (1 MiB, t=1): the product's
# OWASP parameters (19 MiB, t=2) cost ~30 ms per hash and per verify on the 2-core box, ~20 s of
# tests/access and tests/api alone. Same code path and hash format (pwdlib's Argon2id; a hash
# records its parameters); the server processes tests start (support.server_process, the
# browser suite, the fault runs) keep the product's own parameters.
passwords._hasher = PasswordHash((Argon2Hasher(time_cost=1, memory_cost=1024, parallelism=1),))
passwords._DUMMY_HASH = passwords._hasher.hash("not-a-real-password")

POSTGRES_URL = os.environ.get("EV_TEST_POSTGRES_URL")
BACKENDS = ["sqlite", *(["postgres"] if POSTGRES_URL else [])]


HANG_SECONDS = float(os.environ.get("EV_TEST_HANG_SECONDS", "480"))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under pytest-xdist (``make test`` runs two workers) the browser tests stay together on one
    worker: they share one console server and one Chromium, and Playwright's sync API keeps its
    own event loop open while they run (``--dist loadgroup``)."""
    browser = Path(__file__).parent / "browser"
    for item in items:
        if browser in item.path.parents:
            item.add_marker(pytest.mark.xdist_group("browser"))


@pytest.fixture(autouse=True)
async def hang_guard(request: pytest.FixtureRequest) -> AsyncIterator[None]:
    """Fail (with every task's stack) a test that hangs, rather than stall the whole run."""
    guard = HangGuard(asyncio.get_running_loop(), request.node.nodeid, str(Path(__file__).parent))
    guard.start(HANG_SECONDS)
    yield
    guard.stop()


@pytest.fixture(scope="session")
async def secantus(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[SecantusServer]:
    log = tmp_path_factory.mktemp("secantus") / "secantus.log"
    server = SecantusServer(storage_path=":memory:", enable_test_commands=True, log_path=str(log))
    await server.start()
    yield server
    await server.stop()


@pytest.fixture(scope="session")
async def embedded_template(tmp_path_factory: pytest.TempPathFactory) -> EmbeddedTemplate:
    """A provisioned embedded SecantusDB (``support.embedded``), made once per session: under
    pytest-xdist in the directory the workers share (this session's), by whichever needs it
    first."""
    base = tmp_path_factory.getbasetemp()
    return await EmbeddedTemplate.shared(
        base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    )


@pytest.fixture(scope="session")
async def postgres_available() -> None:
    """When CI asks for PostgreSQL it must be there: fail, never skip."""
    if not POSTGRES_URL:
        return
    engine = create_engine(POSTGRES_URL)
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception as exc:
        pytest.fail(f"EV_TEST_POSTGRES_URL is set but PostgreSQL is unreachable: {exc!r}")
    finally:
        await engine.dispose()


@pytest.fixture(scope="session")
async def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> SqliteTemplate:
    return await SqliteTemplate.create(tmp_path_factory.mktemp("sqlite-template"))


@pytest.fixture(scope="session")
async def postgres_template(postgres_available: None) -> AsyncIterator[PostgresTemplate | None]:
    """None without PostgreSQL, or without a usable pg_dump (each test then migrates)."""
    template = await PostgresTemplate.create(POSTGRES_URL) if POSTGRES_URL else None
    yield template
    if template is not None:
        await template.close()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@contextlib.asynccontextmanager
async def _fresh_settings(
    backend: str,
    data_dir: Path,
    secantus: SecantusServer,
    sqlite_template: SqliteTemplate,
    postgres_template: PostgresTemplate | None,
) -> AsyncIterator[Settings]:
    """Settings on stores of their own: a copy of the migrated schema (a SQLite file in
    ``data_dir``, or a PostgreSQL schema) and a MongoDB database; both dropped afterwards."""
    run = uuid.uuid4().hex[:12]
    template = postgres_template if backend == "postgres" else None
    schema = await template.take() if template is not None else f"t_{run}"
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "mongodb_url": secantus.url,
        "mongodb_database": f"ev_{run}",
        "secret_key": "test-signing-key-0123456789abcdef-" + run,
        "default_model": "offline",
        "mongodb_timeout_ms": 1000,
        # the parsing child starts at a test's first document, not with every app: most tests
        # ingest nothing, and its start costs ~2 s of CPU (half of a short test's)
        "knowledge_parser_warm_up": False,
    }
    if backend == "postgres":
        values |= {"database_url": POSTGRES_URL, "database_schema": schema}
    else:
        sqlite_template.copy_into(values["data_dir"])
    yield Settings(_env_file=None, **values)  # type: ignore[call-arg]
    if template is not None:
        template.drop_later(schema)
    elif backend == "postgres":
        engine = create_engine(str(POSTGRES_URL))
        async with engine.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        await engine.dispose()
    # Polling monitor and bounded waits: a cleanup must never hang the session (a teardown once
    # sat idle for 15 minutes on the streaming monitor's awaitable hello under heavy load).
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        secantus.url, serverMonitoringMode="poll", serverSelectionTimeoutMS=10_000
    )
    try:
        await asyncio.wait_for(client.drop_database(values["mongodb_database"]), 60)
    finally:
        await client.close()


@pytest.fixture
async def settings(
    backend: str,
    tmp_path: Path,
    secantus: SecantusServer,
    postgres_available: None,
    sqlite_template: SqliteTemplate,
    postgres_template: PostgresTemplate | None,
) -> AsyncIterator[Settings]:
    async with _fresh_settings(
        backend, tmp_path / "data", secantus, sqlite_template, postgres_template
    ) as values:
        yield values


@pytest.fixture(scope="module", params=BACKENDS)
async def module_settings(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    secantus: SecantusServer,
    postgres_available: None,
    sqlite_template: SqliteTemplate,
    postgres_template: PostgresTemplate | None,
) -> AsyncIterator[Settings]:
    """``settings`` shared by a module's tests (one set of stores per backend): for modules
    whose tests start server processes once and each use users and conversations of their own.
    Such a module keeps its tests on one pytest-xdist worker (``xdist_group``), or each worker
    would start its own."""
    data_dir = tmp_path_factory.mktemp(f"module-{request.param}") / "data"
    async with _fresh_settings(
        str(request.param), data_dir, secantus, sqlite_template, postgres_template
    ) as values:
        yield values


@pytest.fixture
async def app_and_runtime(settings: Settings) -> AsyncIterator[tuple[Any, Runtime]]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        yield app, app.state.runtime


@pytest.fixture
def runtime(app_and_runtime: tuple[Any, Runtime]) -> Runtime:
    return app_and_runtime[1]


@pytest.fixture
async def client(app_and_runtime: tuple[Any, Runtime]) -> AsyncIterator[httpx.AsyncClient]:
    app, _ = app_and_runtime
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c
