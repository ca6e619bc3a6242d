"""Budgets and their monthly counters. Never commits: the caller owns the transaction.

The turn reads its user's and agent's budgets inside its one read (``with_budgets`` adds two
outer joins to that statement) and adds its spend with ``charge`` inside its own write
transaction, so a turn with budgets costs no extra round trip before the model is called and
one statement inside the transaction it already has; a turn without any costs nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from sqlalchemy import (
    FromClause,
    Label,
    and_,
    bindparam,
    case,
    delete,
    insert,
    literal,
    select,
    update,
)

from employeevirtual.stores.records import BudgetRecord
from employeevirtual.stores.sql.engine import Connection, WriteConnection
from employeevirtual.stores.sql.keyset import after_asc
from employeevirtual.stores.sql.tables import budgets

__all__ = ["BudgetReader", "BudgetRepository", "budgets_from_row", "with_budgets"]

_user_budget = budgets.alias("ub")
_agent_budget = budgets.alias("ab")
# what the turn needs of a budget (its check, its counter, its warnings)
_TURN_COLUMNS = (
    "id",
    "scope",
    "scope_id",
    "max_cost",
    "max_tokens",
    "period",
    "used_cost",
    "used_tokens",
    "warned_level",
)

# what the charge returns: a turn has one budget per scope, so ``scope`` tells its row, and the
# counters and limits as they are now; the ids are the read's (no UUIDs to parse again)
_CHARGED_COLUMNS = tuple(c for c in _TURN_COLUMNS if c not in ("id", "scope_id"))


def _charge_statement() -> Any:
    """The turn's ``UPDATE … RETURNING`` on its budgets, built once with bound parameters
    (``id1``, ``id2``, ``period``, ``tokens``, ``cost``): building and cache-keying it for every
    turn cost about twice what executing it does. A turn has at most two budgets (its user's and
    its agent's), so two plain parameters name them (the same id twice for one): an expanding
    ``IN`` list would be rendered into the SQL again on every execution."""
    b = budgets.c
    same = b.period == bindparam("period", type_=b.period.type)
    tokens = bindparam("tokens", type_=b.used_tokens.type)
    cost = bindparam("cost", type_=b.used_cost.type)
    return (
        update(budgets)
        .where(b.id.in_([bindparam("id1", type_=b.id.type), bindparam("id2", type_=b.id.type)]))
        .values(
            used_tokens=case((same, b.used_tokens + tokens), else_=tokens),
            used_cost=case((same, b.used_cost + cost), else_=cost),
            warned_level=case((same, b.warned_level), else_=0),
            period=bindparam("period", type_=b.period.type),
        )
        .returning(*[b[n] for n in _CHARGED_COLUMNS])
    )


_CHARGE = _charge_statement()


def with_budgets(
    base: FromClause, user_id: Any, agent_id: Any
) -> tuple[FromClause, list[Label[Any]]]:
    """``base`` outer-joined with the user's and the agent's budget rows, and their columns
    (labelled ``ub_*`` and ``ab_*``); ``user_id``/``agent_id`` are columns of ``base``."""
    ub, ab = _user_budget, _agent_budget
    joined = base.outerjoin(
        ub, and_(ub.c.scope == literal("user"), ub.c.scope_id == user_id)
    ).outerjoin(ab, and_(ab.c.scope == literal("agent"), ab.c.scope_id == agent_id))
    columns = [ub.c[n].label(f"ub_{n}") for n in _TURN_COLUMNS] + [
        ab.c[n].label(f"ab_{n}") for n in _TURN_COLUMNS
    ]
    return joined, columns


def _record(m: Any, prefix: str = "") -> BudgetRecord:
    """A budget from a row mapping: its columns, or ``with_budgets``' ``prefix``-ed ones."""
    max_cost = m[f"{prefix}max_cost"]
    return BudgetRecord(
        id=m[f"{prefix}id"],
        scope=m[f"{prefix}scope"],
        scope_id=m[f"{prefix}scope_id"],
        max_cost=None if max_cost is None else Decimal(max_cost),
        max_tokens=m[f"{prefix}max_tokens"],
        period=m[f"{prefix}period"],
        used_cost=Decimal(m[f"{prefix}used_cost"]),
        used_tokens=int(m[f"{prefix}used_tokens"]),
        warned_level=int(m[f"{prefix}warned_level"]),
        # ``with_budgets``' columns (``_TURN_COLUMNS``, prefixed) leave the times out (asking a
        # row for a missing key raises and catches an error: no ``RowMapping.get``)
        created_at=None if prefix else m["created_at"],
        updated_at=None if prefix else m["updated_at"],
    )


def _charged(row: Any, read: dict[str, BudgetRecord]) -> BudgetRecord:
    """A budget after the charge: a row of ``_CHARGED_COLUMNS`` on the record the turn read."""
    scope, max_cost, max_tokens, period, used_cost, used_tokens, level = row
    before = read[scope]
    return BudgetRecord(
        id=before.id,
        scope=scope,
        scope_id=before.scope_id,
        max_cost=None if max_cost is None else Decimal(max_cost),
        max_tokens=max_tokens,
        period=period,
        used_cost=Decimal(used_cost),
        used_tokens=int(used_tokens),
        warned_level=int(level),
    )


def budgets_from_row(m: Any) -> list[BudgetRecord]:
    """The budgets ``with_budgets`` joined onto a row (none, one or both)."""
    return [_record(m, p) for p in ("ub_", "ab_") if m[f"{p}id"] is not None]


class BudgetReader:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    async def get(self, budget_id: UUID) -> BudgetRecord | None:
        row = (await self.conn.execute(select(budgets).where(budgets.c.id == budget_id))).first()
        return _record(row._mapping) if row else None

    async def for_scope(self, scope: str, scope_id: UUID) -> BudgetRecord | None:
        query = select(budgets).where(budgets.c.scope == scope, budgets.c.scope_id == scope_id)
        row = (await self.conn.execute(query)).first()
        return _record(row._mapping) if row else None

    async def page(
        self,
        *,
        scope: str | None = None,
        limit: int,
        after: tuple[datetime, UUID] | None = None,
    ) -> tuple[list[BudgetRecord], bool]:
        """One page, oldest first, after the (created_at, id) of the previous page's last
        budget; and whether more follow."""
        query = select(budgets).order_by(budgets.c.created_at, budgets.c.id).limit(limit + 1)
        if scope is not None:
            query = query.where(budgets.c.scope == scope)
        if after is not None:
            query = query.where(after_asc(budgets.c.created_at, budgets.c.id, after))
        rows = [_record(r._mapping) for r in await self.conn.execute(query)]
        return rows[:limit], len(rows) > limit


class BudgetRepository(BudgetReader):
    def __init__(self, conn: WriteConnection) -> None:
        super().__init__(conn)

    async def create(self, budget: BudgetRecord, *, created_by: UUID) -> None:
        values = {f.name: getattr(budget, f.name) for f in fields(budget)}
        await self.conn.execute(insert(budgets).values(**values, created_by=created_by))

    async def set_limits(
        self, budget_id: UUID, *, max_cost: Decimal | None, max_tokens: int | None, now: datetime
    ) -> None:
        """New limits; the warnings start again so the new thresholds are announced."""
        await self.conn.execute(
            update(budgets)
            .where(budgets.c.id == budget_id)
            .values(max_cost=max_cost, max_tokens=max_tokens, warned_level=0, updated_at=now)
        )

    async def delete(self, budget_id: UUID) -> None:
        await self.conn.execute(delete(budgets).where(budgets.c.id == budget_id))

    async def charge(
        self, read: Sequence[BudgetRecord], *, period: str, tokens: int, cost: Decimal
    ) -> list[BudgetRecord]:
        """Add a turn's spend to the counters of the budgets it read (its user's, its agent's
        or both) in one statement (a new month starts them from this turn); returns them as
        they are now. Atomic per row, so concurrent turns never lose or double an addition."""
        by_scope: dict[str, BudgetRecord] = {b.scope: b for b in read}
        if not 1 <= len(read) == len(by_scope) <= 2:
            raise ValueError("a turn charges one or two budgets of different scopes")
        parameters = {"id1": read[0].id, "id2": read[-1].id, "period": period}
        result = await self.conn.execute(_CHARGE, {**parameters, "tokens": tokens, "cost": cost})
        return [_charged(r, by_scope) for r in result]

    async def claim_warning(self, budget_id: UUID, *, period: str, level: int) -> bool:
        """Move the budget's warning mark up to ``level``: True for the one caller that did it
        (so each warning goes out once per period, however many turns cross it together)."""
        result: Any = await self.conn.execute(
            update(budgets)
            .where(
                budgets.c.id == budget_id,
                budgets.c.period == period,
                budgets.c.warned_level < level,
            )
            .values(warned_level=level)
        )
        return bool(result.rowcount == 1)
