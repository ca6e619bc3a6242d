"""SQLite: a few ``DirectStatement``s as one transaction in one trip to the driver's thread
(``sqlite_driver.run_transaction``), for a turn's write (``ConversationRepository.append`` on
``engine.OneTrip``). It runs on ``direct``'s own machinery: its plans, its statement events,
its error handling.

Its events are SQLAlchemy's for a transaction:
``begin``, then ``before_cursor_execute`` for BEGIN IMMEDIATE (as the ``begin`` hook's statement
on SQLAlchemy's path) and each statement, in order, before the trip; after it each one's
``after_cursor_execute`` (or the failed one's error handling) in reverse order, so listeners that
keep a stack per connection pair them, then ``commit`` or ``rollback``. A statement the trip did
not reach (after a failure, or after a statement that found no row) gets its after-event too:
every before-event is closed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.util.concurrency import greenlet_spawn

from employeevirtual.stores.sql import sqlite_driver
from employeevirtual.stores.sql.direct import (
    DirectStatement,
    driver_runner,
    fire_statement_event,
    processed_rows,
    raise_as_sqlalchemy,
    sqlite_statement,
)

__all__ = ["Step", "run_transaction"]


@dataclass(frozen=True, slots=True)
class Step:
    """A statement of ``run_transaction``: a mapping of parameters, or a sequence of them when
    ``many``. ``needs_row``: when it returns no row the transaction is rolled back there."""

    statement: DirectStatement
    parameters: Any
    many: bool = False
    needs_row: bool = False


async def run_transaction(conn: AsyncConnection, steps: Sequence[Step]) -> list[list[Any]] | None:
    """``steps`` as one SQLite transaction (BEGIN IMMEDIATE … COMMIT) on ``conn``, which must
    be outside any transaction (``engine.OneTrip``): each statement's rows (none for ``many``),
    or None when a ``needs_row`` statement found none (rolled back). In one trip to the driver's
    thread; SQLAlchemy's path when the driver connection cannot (echo, an unusual state). A
    failure is rolled back before it is raised, as SQLAlchemy would raise it."""
    if driver_runner(conn) is not sqlite_statement:
        found: list[list[Any]] | None = await greenlet_spawn(
            _transaction_via_sqlalchemy, conn.sync_connection, steps
        )
        return found
    sync: Any = conn.sync_connection
    adapter = sync._dbapi_connection.dbapi_connection
    plans = [step.statement.plan(conn) for step in steps]
    _fire_transaction(sync, "begin")
    fired: list[tuple[str, Any, bool]] = [(_BEGIN, (), False)]
    operations: list[sqlite_driver.Operation] = []
    for plan, step in zip(plans, steps, strict=True):
        parameters = step.parameters
        args = [plan.arguments(p) for p in parameters] if step.many else plan.arguments(parameters)
        operations.append((plan.sql, args, step.many, step.needs_row))
        fired.append((plan.sql, args, step.many))
    for sql, args, many in fired:
        fire_statement_event(sync, "before_cursor_execute", sql, args, many)
    done: list[tuple[Any, list[Any]]] = []
    failure: tuple[int, BaseException] | None = None
    try:
        done, failure = await sqlite_driver.run_transaction(adapter, operations)
    except BaseException as lost:  # the trip itself (a cancellation): counted to BEGIN
        failure = (-1, lost)
    committed = failure is None and len(done) == len(steps)
    try:
        if failure is not None:
            failed, error = failure
            await _transaction_failed(conn, adapter, fired, failed + 1, error)
        _after_each(sync, fired, range(len(fired)))
    finally:
        _fire_transaction(sync, "commit" if committed else "rollback")
    if not committed:
        return None
    return [
        []
        if step.many
        else processed_rows(plan, rows, conn.dialect, [None] * len(description or ()))
        for plan, step, (description, rows) in zip(plans, steps, done, strict=True)
    ]


def _fire_transaction(sync: Any, name: str) -> None:
    dispatch = getattr(sync.dispatch, name)
    if dispatch:
        dispatch(sync)


_BEGIN = "BEGIN IMMEDIATE"


def _after_each(sync: Any, fired: list[tuple[str, Any, bool]], indexes: range) -> None:
    for i in reversed(indexes):
        fire_statement_event(sync, "after_cursor_execute", *fired[i])


async def _transaction_failed(
    conn: AsyncConnection,
    adapter: Any,
    fired: list[tuple[str, Any, bool]],
    failed: int,
    error: BaseException,
) -> None:
    """Raise ``error``, of ``fired[failed]`` (past the end: COMMIT), after closing every other
    statement's events, as ``raise_as_sqlalchemy`` would for one statement."""
    sync: Any = conn.sync_connection
    if failed >= len(fired):
        _after_each(sync, fired, range(len(fired)))
        await raise_as_sqlalchemy(conn, adapter, error, "COMMIT", ())
        return  # not reached: raise_as_sqlalchemy raises
    _after_each(sync, fired, range(failed + 1, len(fired)))
    try:
        sql, args, _ = fired[failed]
        await raise_as_sqlalchemy(conn, adapter, error, sql, args)
    finally:
        _after_each(sync, fired, range(failed))


def _transaction_via_sqlalchemy(sync: Any, steps: Sequence[Step]) -> list[list[Any]] | None:
    """``run_transaction`` on SQLAlchemy's path, in the greenlet. The ``begin`` hook sends no
    BEGIN IMMEDIATE on a ``OneTrip`` (``ONE_TRIP``), so it is sent here."""
    transaction = sync.begin()
    try:
        sync.exec_driver_sql(_BEGIN)
        found: list[list[Any]] = []
        for step in steps:
            if step.many:
                sync.execute(step.statement.statement, list(step.parameters))
                found.append([])
                continue
            found.append(list(sync.execute(step.statement.statement, step.parameters)))
            if step.needs_row and not found[-1]:
                transaction.rollback()
                return None
    except BaseException:
        if transaction.is_active:
            transaction.rollback()
        raise
    transaction.commit()
    return found
