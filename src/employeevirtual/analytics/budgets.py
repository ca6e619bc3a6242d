"""Monthly budgets in cost and/or tokens, per user and per agent: set by admins, checked
before the model is called, counted inside the turn's own transaction.

* **Check** (``check``): on the budgets the turn's single read already joined in; a budget at or
  past its limit this month refuses the turn with 402 before the model runs. No extra round trip.
* **Count** (``charge``): one ``UPDATE … RETURNING`` inside the turn's write transaction adds
  the run's tokens and cost to each of its budgets (only when it has some). Atomic per row, so
  concurrent turns never double or lose an addition, and an idempotent replay never runs the
  turn, so it never counts. A turn that starts under the limit may finish past it: the
  overshoot is at most one run's tokens (``EV_AGENT_MAX_TOTAL_TOKENS``) per turn in flight.
* **Warn** at 80% and 100%: the first turn to cross a threshold claims it (compare-and-set on
  ``warned_level``) and writes an audit row in the same transaction; after the commit, a
  ``system_logs`` document and the webhook (``alerts.py``).
* **Month**: ``period`` (YYYY-MM, UTC) on the row says which month ``used_*`` count; the first
  turn of a new month starts them again. ``clock`` is injected (tests cross a month boundary).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from employeevirtual.analytics.alerts import AlertSender
from employeevirtual.analytics.rollups import Clock
from employeevirtual.analytics.service import AnalyticsService, UsageQuery
from employeevirtual.cursors import time_cursor
from employeevirtual.errors import Conflict, InvalidInput, NotFound, ServiceError
from employeevirtual.stores.records import BudgetRecord, BudgetScope, UserRecord
from employeevirtual.stores.sql.agents import AgentReader
from employeevirtual.stores.sql.audit import AuditRepository
from employeevirtual.stores.sql.budgets import BudgetReader, BudgetRepository
from employeevirtual.stores.sql.engine import WriteConnection, read_connection, write_transaction
from employeevirtual.stores.sql.users import UserReader

__all__ = ["BudgetAlert", "BudgetExceeded", "BudgetService", "BudgetStatus", "next_month"]

log = logging.getLogger(__name__)

LEVELS = (100, 80)


class BudgetExceeded(ServiceError):
    """402: the turn would start over a monthly budget; nothing was written."""

    status_code = 402


@dataclass(frozen=True, slots=True)
class BudgetAlert:
    budget: BudgetRecord
    level: int


@dataclass(frozen=True, slots=True)
class BudgetStatus(BudgetRecord):
    """A budget as it stands now: ``period`` is this month (a past month's counters read as
    zero)."""

    @property
    def resets_at(self) -> datetime:
        return next_month(self.period)

    @property
    def remaining_cost(self) -> Decimal | None:
        return None if self.max_cost is None else max(Decimal(0), self.max_cost - self.used_cost)

    @property
    def remaining_tokens(self) -> int | None:
        return None if self.max_tokens is None else max(0, self.max_tokens - self.used_tokens)


def _fields(b: BudgetRecord) -> dict[str, Any]:
    return {f.name: getattr(b, f.name) for f in fields(b)}


def period_of(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m")


def next_month(period: str) -> datetime:
    year, month = (int(x) for x in period.split("-"))
    return datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC)


def _level(b: BudgetRecord) -> int:
    """The highest warning level (``LEVELS``) the budget's counters reached: 100, 80 or 0."""
    for level in LEVELS:
        if b.max_tokens and b.used_tokens * 100 >= b.max_tokens * level:
            return level
        if b.max_cost and b.used_cost * 100 >= b.max_cost * level:
            return level
    return 0


def _used_up(b: BudgetRecord, period: str) -> bool:
    """Whether the budget's counters for ``period`` reached one of its limits (a past month's
    counters count as zero)."""
    current = b.period == period
    if b.max_tokens is not None and (b.used_tokens if current else 0) >= b.max_tokens:
        return True
    return b.max_cost is not None and (b.used_cost if current else 0) >= b.max_cost


class BudgetService:
    def __init__(
        self,
        *,
        engine: AsyncEngine,
        analytics: AnalyticsService,
        alerts: AlertSender,
        clock: Clock,
    ) -> None:
        self.engine = engine
        self.analytics = analytics
        self.alerts = alerts
        self.clock = clock

    def period(self) -> str:
        return period_of(self.clock())

    def status(self, b: BudgetRecord) -> BudgetStatus:
        period = self.period()
        past = {} if b.period == period else {"used_cost": Decimal(0), "used_tokens": 0}
        return BudgetStatus(**{**_fields(b), **past, "period": period})

    # -- the turn -----------------------------------------------------------------------------

    def check(self, budgets: Sequence[BudgetRecord]) -> None:
        """Refuse (402) a turn whose user or agent has used up a monthly budget."""
        if not budgets:
            return
        period = self.period()
        for b in budgets:
            if not _used_up(b, period):
                continue
            s = self.status(b)
            over = []
            if s.max_tokens is not None and s.used_tokens >= s.max_tokens:
                over.append(f"{s.used_tokens} of {s.max_tokens} tokens")
            if s.max_cost is not None and s.used_cost >= s.max_cost:
                over.append(f"{s.used_cost.normalize():f} of {s.max_cost.normalize():f} cost")
            if over:
                raise BudgetExceeded(
                    f"the monthly budget of this {s.scope} is used up ({' and '.join(over)} "
                    f"in {s.period}); it resets at {s.resets_at.isoformat()}",
                    budget={
                        "id": str(s.id),
                        "scope": s.scope,
                        "scope_id": str(s.scope_id),
                        "period": s.period,
                        "used_tokens": s.used_tokens,
                        "max_tokens": s.max_tokens,
                        "used_cost": float(s.used_cost),
                        "max_cost": None if s.max_cost is None else float(s.max_cost),
                        "resets_at": s.resets_at.isoformat(),
                    },
                )

    async def charge(
        self,
        conn: WriteConnection,
        budgets: Sequence[BudgetRecord],
        *,
        tokens: int,
        cost: Decimal,
        actor_id: UUID,
        now: datetime,
    ) -> list[BudgetAlert]:
        """Inside the turn's transaction: add its spend; claim and audit the warnings it
        crossed. Returns them for ``announce`` after the commit."""
        if not budgets:
            return []
        period = self.period()
        repo = BudgetRepository(conn)
        alerts = []
        for b in await repo.charge(budgets, period=period, tokens=tokens, cost=cost):
            level = _level(b)
            if level > b.warned_level and await repo.claim_warning(
                b.id, period=period, level=level
            ):
                await AuditRepository(conn).record(
                    action="budget.warning",
                    actor_id=actor_id,
                    now=now,
                    target_type="budget",
                    target_id=str(b.id),
                    details=_details(b, level),
                )
                alerts.append(BudgetAlert(b, level))
        return alerts

    def announce(self, alerts: Sequence[BudgetAlert], *, request_id: str | None = None) -> None:
        for alert in alerts:
            b = alert.budget
            word = "used up" if alert.level >= 100 else f"at {alert.level}%"
            self.alerts.send(
                "budget.warning",
                f"the monthly budget of {b.scope} {b.scope_id} is {word} ({b.period})",
                {**_details(b, alert.level), "request_id": request_id},
            )

    # -- admin --------------------------------------------------------------------------------

    async def page(
        self,
        *,
        scope: str | None = None,
        limit: int,
        after: tuple[datetime, UUID] | None = None,
    ) -> tuple[list[BudgetStatus], str | None]:
        """One page of budgets, oldest first, and the cursor of the next (None: the last)."""
        async with read_connection(self.engine) as conn:
            rows, more = await BudgetReader(conn).page(scope=scope, limit=limit, after=after)
        last = rows[-1] if more and rows else None
        next_cursor = None
        if last is not None and last.created_at is not None:
            next_cursor = time_cursor(last.created_at, last.id)
        return [self.status(b) for b in rows], next_cursor

    async def get(self, budget_id: UUID) -> BudgetStatus:
        async with read_connection(self.engine) as conn:
            found = await BudgetReader(conn).get(budget_id)
        if found is None:
            raise NotFound(f"budget {budget_id} not found")
        return self.status(found)

    async def for_user(self, user_id: UUID) -> BudgetStatus | None:
        async with read_connection(self.engine) as conn:
            found = await BudgetReader(conn).for_scope("user", user_id)
        return None if found is None else self.status(found)

    async def create(
        self,
        admin: UserRecord,
        *,
        scope: BudgetScope,
        scope_id: UUID,
        max_cost: Decimal | None,
        max_tokens: int | None,
        client_ip: str | None,
    ) -> BudgetStatus:
        """A new budget starts with what its user or agent already spent this month (from
        the usage analytics), so setting one mid-month does not hand out a fresh month. The
        runs of the last sync-ack flush interval (0.5 s) may not be in the analytics yet."""
        if max_cost is None and max_tokens is None:
            raise InvalidInput("give max_cost, max_tokens or both")
        async with read_connection(self.engine) as conn:
            if scope == "user":
                exists = await UserReader(conn).get(scope_id) is not None
            else:
                exists = await AgentReader(conn).get_visible(scope_id, admin) is not None
        if not exists:
            raise NotFound(f"{scope} {scope_id} not found")
        now, budget_id = self.clock(), uuid.uuid4()
        used_tokens, used_cost = await self._spent_this_month(scope, scope_id, now.date())
        try:
            async with write_transaction(self.engine) as conn:
                await BudgetRepository(conn).create(
                    BudgetRecord(
                        id=budget_id,
                        scope=scope,
                        scope_id=scope_id,
                        max_cost=max_cost,
                        max_tokens=max_tokens,
                        period=period_of(now),
                        used_cost=used_cost,
                        used_tokens=used_tokens,
                        warned_level=0,
                        created_at=now,
                    ),
                    created_by=admin.id,
                )
                await AuditRepository(conn).record(
                    action="budget.create",
                    actor_id=admin.id,
                    now=now,
                    target_type="budget",
                    target_id=str(budget_id),
                    details=_limits(scope, scope_id, max_cost, max_tokens),
                    client_ip=client_ip,
                )
        except IntegrityError:
            raise Conflict(
                f"{scope} {scope_id} already has a budget; change it with PATCH"
            ) from None
        return await self.get(budget_id)

    async def update(
        self,
        admin: UserRecord,
        budget_id: UUID,
        changes: dict[str, Any],
        *,
        client_ip: str | None,
    ) -> BudgetStatus:
        current = await self.get(budget_id)
        max_cost = changes.get("max_cost", current.max_cost)
        max_tokens = changes.get("max_tokens", current.max_tokens)
        if max_cost is None and max_tokens is None:
            raise InvalidInput("a budget needs max_cost, max_tokens or both")
        now = self.clock()
        async with write_transaction(self.engine) as conn:
            await BudgetRepository(conn).set_limits(
                budget_id, max_cost=max_cost, max_tokens=max_tokens, now=now
            )
            await AuditRepository(conn).record(
                action="budget.update",
                actor_id=admin.id,
                now=now,
                target_type="budget",
                target_id=str(budget_id),
                details=_limits(current.scope, current.scope_id, max_cost, max_tokens),
                client_ip=client_ip,
            )
        return await self.get(budget_id)

    async def delete(self, admin: UserRecord, budget_id: UUID, *, client_ip: str | None) -> None:
        current = await self.get(budget_id)
        now = self.clock()
        async with write_transaction(self.engine) as conn:
            await BudgetRepository(conn).delete(budget_id)
            await AuditRepository(conn).record(
                action="budget.delete",
                actor_id=admin.id,
                now=now,
                target_type="budget",
                target_id=str(budget_id),
                details=_limits(current.scope, current.scope_id, None, None),
                client_ip=client_ip,
            )

    async def _spent_this_month(
        self, scope: str, scope_id: UUID, today: date
    ) -> tuple[int, Decimal]:
        query = UsageQuery(
            start=today.replace(day=1),
            end=today,
            user_id=scope_id if scope == "user" else None,
            agent_id=scope_id if scope == "agent" else None,
        )
        try:
            rows = await self.analytics.compute(query)
        except Exception as exc:  # MongoDB away: the budget starts from zero (logged)
            log.warning("month-to-date usage of %s %s unknown: %s", scope, scope_id, exc)
            return 0, Decimal(0)
        tokens = sum(r.input_tokens + r.output_tokens for r in rows)
        cost = Decimal(str(round(sum(r.cost for r in rows), 8)))
        return tokens, cost


def _limits(
    scope: str, scope_id: UUID, max_cost: Decimal | None, max_tokens: int | None
) -> dict[str, Any]:
    return {
        "scope": scope,
        "scope_id": str(scope_id),
        "max_cost": None if max_cost is None else str(max_cost),
        "max_tokens": max_tokens,
    }


def _details(b: BudgetRecord, level: int) -> dict[str, Any]:
    return {
        "budget_id": str(b.id),
        "scope": b.scope,
        "scope_id": str(b.scope_id),
        "level": level,
        "period": b.period,
        "used_tokens": b.used_tokens,
        "max_tokens": b.max_tokens,
        "used_cost": str(b.used_cost),
        "max_cost": None if b.max_cost is None else str(b.max_cost),
        "resets_at": next_month(b.period).isoformat(),
    }
