"""A turn's hot statements, run on the driver's own connection.

SQLAlchemy's execution path (the greenlet hand-off, cache key, execution context, parameter and
result processing, ``Row`` objects) costs about 120 µs of CPU a statement on top of the driver's
own 40–50 µs (asyncpg; measured, issue 17). A ``DirectStatement`` is a Core statement compiled
once per engine, with its bind and result processors taken from that compilation, and run
through the same SQLAlchemy connection's driver connection: same connection, same transaction,
same types in and out. What stays SQLAlchemy's:

- events: ``before_cursor_execute``/``after_cursor_execute`` listeners (metrics, tracing, the
  bench's meters) are called with the statement and its parameters (no cursor, no context);
- errors: a driver error goes through the dialect's translation and the connection's own error
  handling (``handle_error`` listeners, disconnect detection, invalidation), so callers get the
  same ``sqlalchemy.exc`` exceptions, and ``_RetryFirst`` retries a first statement the same way;
- any dialect without a runner here (SQL Server), a connection in an unusual state (not yet
  connected, invalidated) or a retry: the plain ``conn.execute``.

Only statements with plain named parameters qualify (no expanding ``IN`` lists).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine.default import DefaultDialect
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql import Executable
from sqlalchemy.util.concurrency import greenlet_spawn

from employeevirtual.stores.sql.sqlite_driver import run_statement

__all__ = [
    "DirectRow",
    "DirectStatement",
    "driver_runner",
    "fire_statement_event",
    "processed_rows",
    "raise_as_sqlalchemy",
    "set_options",
    "sqlite_statement",
]

Processor = Callable[[Any], Any] | None


class DirectRow:
    """A result row: columns by attribute and through ``_mapping``, like SQLAlchemy's ``Row``."""

    __slots__ = ("_mapping",)

    def __init__(self, mapping: dict[str, Any]) -> None:
        self._mapping = mapping

    def __getattr__(self, name: str) -> Any:
        try:
            return self._mapping[name]
        except KeyError:
            raise AttributeError(name) from None

    def __repr__(self) -> str:
        return f"DirectRow({self._mapping!r})"


@dataclass(slots=True)
class _Plan:
    sql: str
    names: tuple[str, ...]  # the positional parameters, in order
    defaults: dict[str, Any]  # values compiled into the statement (literal binds)
    binds: dict[str, Processor]
    keys: tuple[str, ...]  # result columns
    result_types: tuple[Any, ...]
    results: tuple[Processor, ...] | None = None  # from the first result's column types

    def arguments(self, parameters: Mapping[str, Any]) -> list[Any]:
        out = []
        for name in self.names:
            # a parameter the statement needs and the caller left out is a KeyError
            value = parameters[name] if name in parameters else self.defaults[name]
            process = self.binds.get(name)
            out.append(value if process is None else process(value))
        return out


class DirectStatement:
    """``statement`` (a Core ``select``/``insert``/``update``/``delete`` with ``bindparam``\\ s)
    run on the driver connection; see the module docstring."""

    def __init__(self, statement: Executable) -> None:
        self.statement = statement
        # per engine (one dialect, one schema map); weak: tests and tools make many engines
        self._plans: weakref.WeakKeyDictionary[Any, _Plan] = weakref.WeakKeyDictionary()

    async def rows(self, conn: AsyncConnection, parameters: Mapping[str, Any]) -> list[Any]:
        """The statement's rows (``DirectRow``; SQLAlchemy ``Row`` on the fallback path)."""
        found: list[Any] = await _attempt(conn, self, parameters, many=False)
        return found

    async def first(self, conn: AsyncConnection, parameters: Mapping[str, Any]) -> Any | None:
        found = await self.rows(conn, parameters)
        return found[0] if found else None

    async def execute_many(
        self, conn: AsyncConnection, parameters: Sequence[Mapping[str, Any]]
    ) -> None:
        """The statement once per parameter set, in one driver call (an INSERT of rows)."""
        await _attempt(conn, self, parameters, many=True)

    async def via_sqlalchemy(self, conn: AsyncConnection, parameters: Any, many: bool) -> Any:
        if many:
            await conn.execute(self.statement, list(parameters))
            return None
        return list(await conn.execute(self.statement, parameters))

    def plan(self, conn: AsyncConnection) -> _Plan:
        engine = conn.engine
        plan = self._plans.get(engine.sync_engine)
        if plan is None:
            translate = engine.get_execution_options().get("schema_translate_map")
            compiled: Any = self.statement.compile(  # type: ignore[attr-defined]
                dialect=engine.dialect,
                schema_translate_map=translate,
                render_schema_translate=bool(translate),
            )
            if (
                compiled.positiontup is None
                or any(b.expanding for b in compiled.binds.values())
                or compiled.literal_execute_params
                or compiled.post_compile_params
            ):
                raise TypeError("a DirectStatement needs plain positional parameters")
            columns = compiled._result_columns
            required = {b.key for b in compiled.binds.values() if b.required}
            plan = _Plan(
                sql=compiled.string,
                names=tuple(compiled.positiontup),
                defaults={
                    name: value
                    for name, value in compiled.construct_params(_check=False).items()
                    if name not in required
                },
                binds=dict(compiled._bind_processors),
                keys=tuple(c.keyname for c in columns),
                result_types=tuple(c.type for c in columns),
            )
            self._plans[engine.sync_engine] = plan
        return plan


async def _attempt(
    conn: AsyncConnection, statement: DirectStatement, parameters: Any, *, many: bool
) -> Any:
    execute = driver_runner(conn)
    if execute is None:
        return await statement.via_sqlalchemy(conn, parameters, many)
    first = getattr(conn, "first_direct", None)
    if first is not None:  # a _RetryFirst connection: its first statement's retry
        return await first(
            lambda: _run(execute, conn, statement, parameters, many),
            lambda: statement.via_sqlalchemy(conn, parameters, many),
        )
    return await _run(execute, conn, statement, parameters, many)


def driver_runner(conn: AsyncConnection) -> Any:
    """The driver's part of a statement for ``conn`` (``_run``), or None for SQLAlchemy's path."""
    sync: Any = conn.sync_connection
    if sync is None or sync.invalidated or sync._dbapi_connection is None or sync._echo:
        return None  # echo: SQLAlchemy logs the statement
    transaction = sync._transaction
    if transaction is not None and not transaction.is_active:
        return None  # SQLAlchemy's path raises what a statement in it must
    adapter = sync._dbapi_connection.dbapi_connection
    name = type(adapter).__module__
    if name.endswith("asyncpg"):
        return _asyncpg_statement
    if name.endswith("sqlite_driver"):
        return sqlite_statement
    return None


def fire_statement_event(sync: Any, name: str, sql: str, args: Any, many: bool) -> None:
    dispatch = getattr(sync.dispatch, name)
    if dispatch:
        dispatch(sync, None, sql, args, None, many)


async def raise_as_sqlalchemy(
    conn: AsyncConnection, adapter: Any, error: BaseException, sql: str, args: Any
) -> Any:
    """Raise ``error`` as SQLAlchemy would have: translated by the adapter, then through the
    connection's own handling (``handle_error`` events, disconnect detection, invalidation; a
    cancellation invalidates the connection, whose protocol state is unknown)."""
    sync: Any = conn.sync_connection
    try:
        if isinstance(error, Exception):
            adapter._handle_exception(error)
        raise error
    except BaseException as translated:
        dbapi = conn.dialect.dbapi
        stale = tuple(
            getattr(dbapi, name)
            for name in ("InvalidCachedStatementError", "InternalServerError")
            if hasattr(dbapi, name)
        )
        if stale and isinstance(translated, stale):
            # asyncpg: a column's type changed under the cached prepared statements; what
            # SQLAlchemy's asyncpg execution context does, so the next statement prepares anew
            conn.dialect._invalidate_schema_cache()  # type: ignore[attr-defined]
        await greenlet_spawn(_handle, sync, translated, sql, args)
    raise error  # not reached: both steps raise


def _handle(sync: Any, error: BaseException, sql: str, args: Any) -> None:
    """SQLAlchemy's handling of ``error``, in the greenlet, where it reads the exception being
    handled (``sys.exc_info``): a cancellation is re-raised as it is."""
    try:
        raise error
    except BaseException:
        sync._handle_dbapi_exception(error, sql, args, None, None)


def processed_rows(
    plan: _Plan, rows: Sequence[Any], dialect: Any, coltypes: Sequence[Any]
) -> list[Any]:
    if plan.results is None:
        plan.results = tuple(
            t._cached_result_processor(dialect, coltype)
            for t, coltype in zip(plan.result_types, coltypes, strict=True)
        )
    keys, processors = plan.keys, plan.results
    out = []
    for row in rows:
        out.append(
            DirectRow(
                {
                    key: value if process is None else process(value)
                    for key, process, value in zip(keys, processors, row, strict=True)
                }
            )
        )
    return out


async def _run(
    execute: Any, conn: AsyncConnection, statement: DirectStatement, parameters: Any, many: bool
) -> Any:
    """``statement`` through ``execute`` (the driver's part), with SQLAlchemy's events before
    and after it and its error handling."""
    sync: Any = conn.sync_connection
    if sync._transaction is None:
        # SQLAlchemy's autobegin: the statement joins the connection's transaction (its begin
        # events run: SQLite's BEGIN IMMEDIATE, none for a read connection) as on its own path
        if execute is _asyncpg_statement and _begins_lazily(sync):
            sync._autobegin()
        else:
            await greenlet_spawn(sync._autobegin)
    adapter = sync._dbapi_connection.dbapi_connection
    plan = statement.plan(conn)
    args = [plan.arguments(p) for p in parameters] if many else plan.arguments(parameters)
    fire_statement_event(sync, "before_cursor_execute", plan.sql, args, many)
    try:
        found, coltypes = await execute(conn, adapter, plan.sql, args, many)
    except BaseException as error:
        await raise_as_sqlalchemy(conn, adapter, error, plan.sql, args)
    fire_statement_event(sync, "after_cursor_execute", plan.sql, args, many)
    return None if many else processed_rows(plan, found, conn.dialect, coltypes)


async def set_options(conn: AsyncConnection, **options: Any) -> None:
    """``await conn.execution_options(**options)``, without its greenlet hand-off (issue 17)
    where the options send nothing: a connection just checked out of the pool on asyncpg, no
    transaction of the driver open (setting its isolation level sets the adapter's attribute;
    the rollback that comes first has nothing to roll back), and no
    ``set_connection_execution_options`` listener (it might send something). SQLAlchemy's own
    code either way: the options are recorded as by ``conn.execution_options``, and an isolation
    level is reset when the connection goes back to the pool."""
    sync: Any = conn.sync_connection
    if (
        sync is not None
        and _idle_asyncpg(sync)
        and not sync.dispatch.set_connection_execution_options
    ):
        sync.execution_options(**options)
    else:
        await conn.execution_options(**options)


def _idle_asyncpg(sync: Any) -> bool:
    """``sync`` (a SQLAlchemy ``Connection``) holds an asyncpg connection with no transaction."""
    if sync.invalidated or sync._dbapi_connection is None:
        return False
    adapter = sync._dbapi_connection.dbapi_connection
    return type(adapter).__module__.endswith("asyncpg") and adapter._transaction is None


def _begins_lazily(sync: Any) -> bool:
    """Whether SQLAlchemy's begin on ``sync`` sends nothing, so it needs no greenlet hand-off
    (one fewer a statement, issue 17): on asyncpg the dialect's ``do_begin`` does nothing (the
    driver adapter's BEGIN goes with the first statement, ``_asyncpg_statement``; none in
    autocommit), unless a ``begin`` listener might run a statement of its own."""
    return type(sync.dialect).do_begin is DefaultDialect.do_begin and not sync.dispatch.begin


async def _asyncpg_statement(
    conn: AsyncConnection, adapter: Any, sql: str, args: Any, many: bool
) -> tuple[Sequence[Any], list[Any]]:
    """The rows and their column types (oids), as SQLAlchemy's asyncpg cursor would run it."""
    async with adapter._execute_mutex:
        if adapter._transaction is None:
            await adapter._start_transaction()  # a no-op in autocommit (reads)
        if many:
            await adapter._check_type_cache_invalidation(
                conn.dialect._invalidate_schema_cache_asof  # type: ignore[attr-defined]
            )
            await adapter._connection.executemany(sql, args)
            return [], []
        prepared, attributes = await adapter._prepare(
            sql,
            conn.dialect._invalidate_schema_cache_asof,  # type: ignore[attr-defined]
        )
        return await prepared.fetch(*args), [a.type.oid for a in attributes]


async def sqlite_statement(
    conn: AsyncConnection, adapter: Any, sql: str, args: Any, many: bool
) -> tuple[Sequence[Any], list[Any]]:
    """The rows (SQLite has no column types to give), in one trip to the driver's thread."""
    description, found = await run_statement(adapter, sql, args, many)
    return found, [None] * len(description or ())
