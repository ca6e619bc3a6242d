"""The async engine, with ``empl`` mapped away on SQLite and SQLite set up for concurrent use,
and the only two ways into it: ``read_connection`` and ``write_transaction``.

Repositories say in their constructor which kind of connection they need: a ``WriteConnection``
(from ``write_transaction``) for anything that writes, any ``Connection`` for reads. Code outside
``stores/`` never calls ``engine.begin()``/``engine.connect()`` (tests/unit/test_store_access.py).
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, Never, NewType, TypeVar

from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, DisconnectionError, IntegrityError, InvalidRequestError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from employeevirtual.stores.sql import sqlite_driver
from employeevirtual.stores.sql.direct import set_options
from employeevirtual.stores.sql.tables import SCHEMA

__all__ = [
    "ONE_TRIP",
    "READ_AUTOCOMMIT",
    "Connection",
    "OneTrip",
    "ReadConnection",
    "WriteConnection",
    "create_engine",
    "ping",
    "read_connection",
    "replay_refused",
    "schema_translate_map",
    "write_transaction",
]

log = logging.getLogger(__name__)

T = TypeVar("T")

# A connection outside any transaction: each statement is its own snapshot.
ReadConnection = NewType("ReadConnection", AsyncConnection)
# A connection inside a transaction that commits when its ``write_transaction`` block ends.
WriteConnection = NewType("WriteConnection", AsyncConnection)
# What a read-only repository accepts: either kind.
Connection = ReadConnection | WriteConnection

# execution option marking a connection whose statements run without a transaction
READ_AUTOCOMMIT = "ev_read_autocommit"
# execution option marking SQLite's ``OneTrip``: its transaction's BEGIN IMMEDIATE is sent in the
# same trip as its statements (``one_trip.run_transaction``), not by the ``begin`` hook
ONE_TRIP = "ev_one_trip"

_UNIQUE_VIOLATION = "23505"  # PostgreSQL's SQLSTATE


def schema_translate_map(url: str, schema: str = SCHEMA) -> dict[str | None, str | None]:
    """SQLite has no schemas; elsewhere ``empl`` may be renamed (one schema per test run)."""
    if make_url(url).get_backend_name() == "sqlite":
        return {SCHEMA: None}
    return {} if schema == SCHEMA else {SCHEMA: schema}


def create_engine(
    url: str, *, echo: bool = False, schema: str = SCHEMA, **kwargs: Any
) -> AsyncEngine:
    backend = make_url(url).get_backend_name()
    options: dict[str, Any] = {"echo": echo, **kwargs}
    # A burst queues for a connection behind the CPU, not behind a broken database: 1,000 turns
    # arriving at once on one 2-core worker wait ~50 s (bench); the default 30 s turned that
    # queue into 503s. Load is shed by rate limits, not by the pool.
    if ":memory:" not in url:
        options.setdefault("pool_timeout", 120)
    if backend == "sqlite":
        options.setdefault("connect_args", {"timeout": 30})
        if make_url(url).get_driver_name() == "aiosqlite":
            options.setdefault("module", sqlite_driver.dbapi())  # one thread trip a statement
        if ":memory:" in url:
            options.setdefault("poolclass", NullPool)
    else:
        # No pool_pre_ping (BEGIN; SELECT ';'; ROLLBACK on every checkout: 6 round trips a
        # turn). Its protection comes from three cheaper parts instead: a checkout drops a
        # connection the driver already knows is closed (no round trip; a terminated backend or
        # a restarted server closes the socket), pool_recycle bounds a connection's age (a
        # firewall that drops idle sockets silently), and the first statement of a connection
        # is retried once on a fresh one after a disconnect-class error (``_RetryFirst``).
        options.setdefault("pool_recycle", 1800)
        # A fixed pool: overflow connections are closed as they come back to a full pool, so
        # a steady load past pool_size opened and closed connections all the time (64 turns in
        # flight: 120 turns/s on 20 + 20, 180 on 10 + 0; docs/bench.md).
        options.setdefault("pool_size", 10)
        options.setdefault("max_overflow", 0)
    engine = create_async_engine(url, **options).execution_options(
        schema_translate_map=schema_translate_map(url, schema)
    )
    _connect_errors_as_operational(engine)
    if backend == "sqlite":
        _configure_sqlite(engine)
    else:
        event.listen(engine.sync_engine, "checkout", _drop_closed)
        event.listen(engine.sync_engine, "handle_error", _unusable_is_disconnect)
    return engine


def _unusable_is_disconnect(context: Any) -> None:
    """asyncpg's "cannot switch to state …; another operation is in progress" means a
    connection left mid-protocol (its backend was killed during an operation): it can never be
    used again, so SQLAlchemy should treat it as a disconnect and drop it from the pool."""
    original = context.original_exception
    if type(original).__name__ == "InternalClientError" and "another operation" in str(original):
        context.is_disconnect = True


def _drop_closed(_dbapi_connection: Any, record: Any, _proxy: Any) -> None:
    """A connection whose socket the driver saw close is replaced before anyone uses it."""
    driver = record.driver_connection
    is_closed = getattr(driver, "is_closed", None)
    if is_closed is not None and is_closed():
        raise DisconnectionError("the database closed this connection")


class _RetryFirst(AsyncConnection):
    """An ``AsyncConnection`` whose first statement is retried once, on a fresh connection,
    when it fails with a disconnect-class error. Nothing reached the database on a dead
    connection, so the retry is safe: a read runs again, and a transaction is begun again
    (``write_transaction`` commits whichever transaction is current). Any later statement's
    disconnect is raised as usual: the transaction is lost and nothing of it was committed."""

    _fresh = True
    _autocommit = False  # a read connection: its isolation level is set again after a retry

    async def execute(self, statement: Any, parameters: Any = None, **kwargs: Any) -> Any:
        if not self._fresh:
            return await super().execute(statement, parameters, **kwargs)
        self._fresh = False
        try:
            return await super().execute(statement, parameters, **kwargs)
        except DBAPIError as exc:
            if not exc.connection_invalidated:
                raise
            log.warning("database connection lost on its first statement; retrying once")
        await self._after_disconnect()
        return await super().execute(statement, parameters, **kwargs)

    async def first_direct(
        self, direct: Callable[[], Awaitable[T]], again: Callable[[], Awaitable[T]]
    ) -> T:
        """``direct.DirectStatement``'s way in: the same retry, ``again`` on SQLAlchemy's path."""
        if not self._fresh:
            return await direct()
        self._fresh = False
        try:
            return await direct()
        except DBAPIError as exc:
            if not exc.connection_invalidated:
                raise
            log.warning("database connection lost on its first statement; retrying once")
        await self._after_disconnect()
        return await again()

    async def _after_disconnect(self) -> None:
        in_transaction = self.in_transaction()
        await self.rollback()
        if self._autocommit:
            await self.execution_options(isolation_level="AUTOCOMMIT")
        elif in_transaction:
            await self.begin()


class _OneStatement(_RetryFirst):
    """A ``_RetryFirst`` in autocommit that runs one statement (its retry included); a second
    one is refused: it would not be atomic with the first, which is already committed. Except
    reads after ``replay_refused``: they find what the statement's first run committed."""

    _autocommit = True
    _used = False
    _replayed = False  # its statement ran again on a fresh connection after a disconnect
    _reading = False  # its replay was refused: reads of what the first run wrote may follow

    async def execute(self, statement: Any, parameters: Any = None, **kwargs: Any) -> Any:
        if self._reading and getattr(statement, "is_select", False):
            return await super().execute(statement, parameters, **kwargs)
        self._refuse_second()
        try:
            return await super().execute(statement, parameters, **kwargs)
        finally:
            self._used = True

    async def first_direct(
        self, direct: Callable[[], Awaitable[T]], again: Callable[[], Awaitable[T]]
    ) -> T:
        self._refuse_second()
        try:
            return await super().first_direct(direct, again)
        finally:
            self._used = True

    def _refuse_second(self) -> None:
        if self._used:
            raise InvalidRequestError(
                "write_transaction(single_statement=True) runs one statement; "
                "this block needs a transaction"
            )

    async def _after_disconnect(self) -> None:
        await super()._after_disconnect()
        self._replayed = True


def replay_refused(conn: WriteConnection, error: IntegrityError) -> ReadConnection | None:
    """``conn`` for reads when ``error`` is a unique violation refusing the replay of its
    single statement (``write_transaction(single_statement=True)`` on PostgreSQL, run again
    after its connection was lost): its first run committed and only its answer was lost. The
    replay was rolled back whole, so what the reads find is the first run's doing (and any
    later writes). None for any other error or connection: the error stands."""
    if not isinstance(conn, _OneStatement) or not conn._replayed:
        return None
    if getattr(error.orig, "sqlstate", None) != _UNIQUE_VIOLATION:
        return None
    conn._reading = True
    return ReadConnection(conn)


class OneTrip(AsyncConnection):
    """SQLite's ``write_transaction(single_statement=True)``: a connection outside any
    transaction on which the block's write runs once, as one transaction in one trip to the
    driver's thread (``once``; ``ConversationRepository.append`` through
    ``one_trip.run_transaction``). Any other statement is refused: in autocommit it would not be
    atomic with that write."""

    _used = False

    async def once(self, write: Callable[[], Awaitable[T]]) -> T:
        if self._used:
            self._refuse()
        self._used = True
        return await write()

    async def execute(self, statement: Any, parameters: Any = None, **kwargs: Any) -> Any:
        self._refuse()

    async def first_direct(
        self, direct: Callable[[], Awaitable[T]], again: Callable[[], Awaitable[T]]
    ) -> T:
        self._refuse()

    def _refuse(self) -> Never:
        raise InvalidRequestError(
            "write_transaction(single_statement=True) runs one write; "
            "this block needs a transaction"
        )


def _connect_errors_as_operational(engine: AsyncEngine) -> None:
    """A driver that cannot reach its server raises a bare ``OSError`` (asyncpg: connection
    refused, unknown host, timeout), which SQLAlchemy does not wrap. Raised as the driver's own
    ``OperationalError`` instead, it reaches callers as SQLAlchemy's ``OperationalError`` like
    every other sign of a database that is down, and an ``OSError`` from anything else (a file,
    a socket to another service) is not mistaken for one."""

    @event.listens_for(engine.sync_engine, "do_connect")
    def _connect(dialect: Any, _record: Any, cargs: Any, cparams: Any) -> Any:
        try:
            return dialect.connect(*cargs, **cparams)
        except OSError as exc:
            raise dialect.loaded_dbapi.OperationalError(
                f"cannot connect to the database: {type(exc).__name__}: {exc}"
            ) from exc


def _configure_sqlite(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # WAL lets readers proceed during a write; the driver's own BEGIN handling is replaced by
        # an explicit BEGIN IMMEDIATE so two writers queue instead of failing to upgrade a lock.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        # deleted rows are overwritten, not left in free pages (erasure means erased)
        cursor.execute("PRAGMA secure_delete=ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        options = conn.get_execution_options()
        if not options.get(READ_AUTOCOMMIT) and not options.get(ONE_TRIP):
            conn.exec_driver_sql("BEGIN IMMEDIATE")


@asynccontextmanager
async def read_connection(engine: AsyncEngine) -> AsyncIterator[ReadConnection]:
    """A connection for single-statement reads, outside any transaction.

    Each statement sees one consistent snapshot on its own, so a read that is one statement needs
    no BEGIN/COMMIT round trips, and on SQLite it takes no write lock (the engine's ``begin`` hook
    would otherwise issue BEGIN IMMEDIATE and queue the read behind every writer).
    """
    conn = _RetryFirst(engine)
    async with conn:
        if engine.dialect.name == "sqlite":
            # the DBAPI connection already runs in autocommit (isolation_level=None, see above);
            # skipping our BEGIN IMMEDIATE is enough, and avoids the isolation reset on check-in
            await conn.execution_options(**{READ_AUTOCOMMIT: True})
        else:
            await set_options(conn, isolation_level="AUTOCOMMIT", **{READ_AUTOCOMMIT: True})
            conn._autocommit = True
        yield ReadConnection(conn)


_sqlite_writers: weakref.WeakKeyDictionary[Any, asyncio.Lock] = weakref.WeakKeyDictionary()


@asynccontextmanager
async def write_transaction(
    engine: AsyncEngine, *, single_statement: bool = False
) -> AsyncIterator[WriteConnection]:
    """``engine.begin()``, except that SQLite writers of this process queue on an asyncio lock
    first. SQLite admits one writer at a time anyway; waiting here is FIFO, holds no pooled
    connection or worker thread, and never reaches SQLite's busy timeout, where waiting inside
    BEGIN IMMEDIATE would poll with sleeps while holding both.

    ``single_statement``: the block's writes are one statement on PostgreSQL (a turn's write
    with nothing else in it, ``ConversationRepository.append``). There a statement is atomic
    on its own, so it runs without BEGIN and COMMIT: one round trip instead of three. A second
    statement raises (``InvalidRequestError``) before it runs. The first-statement retry
    (``_RetryFirst``) is kept: a connection lost before the statement reached the server costs
    nothing, as for a transaction. Lost after the statement committed, before its answer (the
    window a transaction's COMMIT has too), the retry's replay is refused whole by the
    messages' primary keys, never a second copy, and the block may read back what the first
    run wrote (``replay_refused``). On SQLite the block's connection is a ``OneTrip`` (still
    after this process's other writers): its write is BEGIN IMMEDIATE, its statements and
    COMMIT in one trip to the driver's thread, so the writers' lock is held for one wake-up of
    the event loop instead of four. Elsewhere the usual transaction."""
    if single_statement and engine.dialect.name == "postgresql":
        async with _OneStatement(engine) as conn:
            await set_options(conn, isolation_level="AUTOCOMMIT")
            yield WriteConnection(conn)
        return
    if engine.dialect.name != "sqlite":
        async with _RetryFirst(engine) as conn:
            await conn.begin()
            try:
                yield WriteConnection(conn)
            except BaseException:
                await conn.rollback()
                raise
            await conn.commit()  # the transaction current now (begun again after a retry)
        return
    lock = _sqlite_writers.setdefault(engine.sync_engine.pool, asyncio.Lock())
    if single_statement:
        async with lock, OneTrip(engine) as one_trip:
            await one_trip.execution_options(**{ONE_TRIP: True})
            yield WriteConnection(one_trip)
        return
    async with lock, engine.begin() as conn:
        yield WriteConnection(conn)


async def ping(engine: AsyncEngine) -> None:
    """One round trip (the readiness check); raises when the database does not answer."""
    async with read_connection(engine) as conn:
        await conn.execute(text("SELECT 1"))
