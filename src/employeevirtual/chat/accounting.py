"""What a turn costs, counted where it happens: budgets checked with the turn's read (402 before
the model runs, nothing written), charged inside the turn's transaction, their warnings sent and
the turn counted in the metrics after the commit."""

from __future__ import annotations

import time
from decimal import Decimal
from uuid import UUID

from employeevirtual.analytics import metrics
from employeevirtual.analytics.budgets import BudgetAlert, BudgetExceeded, BudgetService
from employeevirtual.stores.records import BudgetRecord, MessageRecord, TurnUsage
from employeevirtual.stores.sql.engine import WriteConnection

__all__ = ["TurnAccounting"]


class TurnAccounting:
    def __init__(self, budgets: BudgetService | None) -> None:
        self.budgets = budgets

    def check(self, budgets: list[BudgetRecord], started: float) -> None:
        """402 before the model is called, nothing written (the budgets came with the read)."""
        if self.budgets is None:
            return
        try:
            self.budgets.check(budgets)
        except BudgetExceeded as exc:
            metrics.BUDGET_REFUSALS.labels(exc.extra["budget"]["scope"]).inc()
            metrics.record_turn("budget", time.perf_counter() - started)
            raise

    def charges(self, budgets: list[BudgetRecord]) -> bool:
        """Whether ``charge`` writes anything for a turn with these budgets."""
        return self.budgets is not None and bool(budgets)

    async def charge(
        self,
        conn: WriteConnection,
        budgets: list[BudgetRecord],
        reply: MessageRecord,
        usage: TurnUsage,
        user_id: UUID,
    ) -> list[BudgetAlert]:
        """Inside the reply's transaction: the run's spend on its budgets (none: nothing)."""
        if self.budgets is None or not self.charges(budgets):
            return []
        return await self.budgets.charge(
            conn,
            budgets,
            tokens=usage.total_tokens if reply.message_type == "agent" else 0,
            cost=Decimal(str(usage.cost or 0)),
            actor_id=user_id,
            now=reply.created_at,
        )

    def record(
        self,
        alerts: list[BudgetAlert],
        outcome: str,
        usage: TurnUsage,
        started: float,
        request_id: str | None,
    ) -> None:
        """After the commit: budget warnings out, the turn counted in the metrics."""
        if alerts and self.budgets is not None:
            self.budgets.announce(alerts, request_id=request_id)
        metrics.record_turn(
            outcome,
            time.perf_counter() - started,
            model=usage.model,
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cost=usage.cost,
        )
