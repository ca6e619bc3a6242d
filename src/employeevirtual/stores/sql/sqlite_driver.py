"""aiosqlite with one trip to its thread per statement (``create_engine`` passes ``dbapi()`` as
the engine's ``module`` for ``sqlite+aiosqlite`` URLs; the dialect and the URL stay the same).

SQLAlchemy's aiosqlite cursor makes four trips to the connection's worker thread for a statement
that returns rows: create the cursor, execute, fetch all, close. Each trip is a queue hand-off,
a thread wake-up and a wake-up of the event loop through its self-pipe, and costs more CPU than
SQLite's own work on a turn's small statements. This cursor does the four steps in one function
run on the worker thread, under the same per-connection mutex, and keeps what SQLAlchemy reads
afterwards (``description``, ``rowcount``, ``lastrowid``, the rows). Errors are the same
``sqlite3`` exceptions, raised through the same future. Server-side cursors (streamed results)
keep SQLAlchemy's own implementation.

``run_transaction`` goes one step further for a write whose statements are all known up front
(a turn's write, ``one_trip.run_transaction``): BEGIN IMMEDIATE, the statements and COMMIT in one
trip, rolled back in that same trip when a statement fails.
"""

from __future__ import annotations

import collections
import sqlite3
from typing import Any

import aiosqlite
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
)
from sqlalchemy.util import EMPTY_DICT
from sqlalchemy.util.concurrency import await_

__all__ = ["dbapi", "run_statement", "run_transaction"]

_Outcome = tuple[Any, list[Any], int, int | None]
# a statement of a transaction: its SQL, its parameters, executemany, whether it must find a row
Operation = tuple[str, Any, bool, bool]
# the step that failed (-1: BEGIN, one past the last statement: COMMIT) and its error
Failure = tuple[int, Exception]


def _run(conn: sqlite3.Connection, operation: str, parameters: Any, many: bool) -> _Outcome:
    """On the worker thread: the whole statement, its rows fetched and its cursor closed."""
    cursor = conn.cursor()
    try:
        if many:
            cursor.executemany(operation, parameters)
        else:
            cursor.execute(operation, () if parameters is None else parameters)
        description = cursor.description
        rows = cursor.fetchall() if description else []
        return description, rows, cursor.rowcount, cursor.lastrowid
    finally:
        cursor.close()


def _transaction(
    conn: sqlite3.Connection, operations: list[Operation]
) -> tuple[list[_Outcome], Failure | None]:
    """On the worker thread: BEGIN IMMEDIATE, ``operations`` in order, COMMIT. On the first
    error, or when a statement that must find a row finds none, ROLLBACK instead, so the
    connection leaves the trip outside any transaction. The outcomes of the statements run (fewer
    than ``operations`` when one found no row) and the failure, if any."""
    done: list[_Outcome] = []
    try:
        conn.execute("BEGIN IMMEDIATE").close()
    except Exception as error:
        return done, (-1, error)
    try:
        for operation, parameters, many, needs_row in operations:
            done.append(_run(conn, operation, parameters, many))
            if needs_row and not done[-1][1]:
                conn.rollback()
                return done, None
        conn.commit()
    except Exception as error:
        if conn.in_transaction:
            conn.rollback()
        return done, (len(done), error)  # the statement that failed, or COMMIT
    return done, None


class _OneTripCursor(AsyncAdapt_aiosqlite_cursor):
    __slots__ = ("_outcome_description", "_outcome_lastrowid", "_outcome_rowcount")

    def __init__(self, adapt_connection: AsyncAdapt_aiosqlite_connection) -> None:
        # no trip to create a cursor: ``_run`` makes its own on the worker thread
        self._adapt_connection = adapt_connection
        self._connection = adapt_connection._connection
        self._cursor = None  # type: ignore[assignment]
        self._soft_closed_memoized = EMPTY_DICT
        self._rows = collections.deque()
        self._outcome_description: Any = None
        self._outcome_rowcount = -1
        self._outcome_lastrowid: int | None = None

    @property
    def description(self) -> Any:
        return self._outcome_description

    @property
    def rowcount(self) -> int:
        return self._outcome_rowcount

    @property
    def lastrowid(self) -> Any:
        return self._outcome_lastrowid

    @property
    def arraysize(self) -> int:
        return 1

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        pass

    async def _async_soft_close(self) -> None:
        return None  # the statement's cursor is closed already

    def close(self) -> None:
        self._rows.clear()

    def execute(self, operation: Any, parameters: Any = None) -> Any:
        try:
            return await_(self._trip(operation, parameters, many=False))
        except Exception as error:
            self._adapt_connection._handle_exception(error)

    def executemany(self, operation: Any, seq_of_parameters: Any) -> Any:
        try:
            return await_(self._trip(operation, seq_of_parameters, many=True))
        except Exception as error:
            self._adapt_connection._handle_exception(error)

    async def _trip(self, operation: Any, parameters: Any, *, many: bool) -> None:
        connection: Any = self._connection
        async with self._adapt_connection._execute_mutex:
            outcome: _Outcome = await connection._execute(
                _run, connection._conn, operation, parameters, many
            )
        description, rows, self._outcome_rowcount, self._outcome_lastrowid = outcome
        self._outcome_description = description
        self._rows = collections.deque(rows)

    def nextset(self) -> None:
        return None

    def setinputsizes(self, *inputsizes: Any) -> None:
        return None


class _Connection(AsyncAdapt_aiosqlite_connection):
    __slots__ = ()
    _cursor_cls = _OneTripCursor  # type: ignore[assignment]

    def rollback(self) -> None:
        """No trip when there is nothing to roll back. The pool rolls back every connection it
        takes back; a read connection (autocommit) or a committed write transaction has no
        transaction open, and SQLite's rollback would be a no-op costing a thread trip."""
        raw: sqlite3.Connection | None = self._connection._connection
        if raw is not None and not raw.in_transaction:
            return
        super().rollback()


class _DBAPI(AsyncAdapt_aiosqlite_dbapi):
    def connect(self, *arg: Any, **kw: Any) -> AsyncAdapt_aiosqlite_connection:
        adapted = super().connect(*arg, **kw)
        return _Connection(self, adapted._connection)


def dbapi() -> _DBAPI:
    """The DBAPI module object for ``create_async_engine(..., module=dbapi())``."""
    return _DBAPI(aiosqlite, sqlite3)


async def run_statement(
    adapter: AsyncAdapt_aiosqlite_connection, operation: str, parameters: Any, many: bool
) -> tuple[Any, list[Any]]:
    """One statement in one trip, outside SQLAlchemy's cursor (``direct.DirectStatement``):
    its description and rows."""
    connection: Any = adapter._connection
    async with adapter._execute_mutex:
        description, rows, _, _ = await connection._execute(
            _run, connection._conn, operation, parameters, many
        )
    return description, rows


async def run_transaction(
    adapter: AsyncAdapt_aiosqlite_connection, operations: list[Operation]
) -> tuple[list[tuple[Any, list[Any]]], Failure | None]:
    """``operations`` as one transaction in one trip (``_transaction``): each statement's
    description and rows, and the failure (rolled back already) if one failed."""
    connection: Any = adapter._connection
    async with adapter._execute_mutex:
        done, failure = await connection._execute(_transaction, connection._conn, operations)
    return [(description, rows) for description, rows, _, _ in done], failure
