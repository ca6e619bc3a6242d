"""Request and response bodies of usage analytics, budgets and feedback."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from employeevirtual.api.schemas import UserOut
from employeevirtual.stores.records import BudgetScope, Rating

__all__ = [
    "BudgetIn",
    "BudgetOut",
    "BudgetPage",
    "BudgetPatch",
    "BudgetStatusOut",
    "FeedbackIn",
    "FeedbackOut",
    "MeOut",
    "UsageOut",
    "UsageRowOut",
]


class UsageRowOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    day: date | None = Field(description="set when grouped by day")
    agent_id: str | None = Field(description="set when grouped by agent")
    user_id: str | None = Field(description="set when grouped by user")
    model: str | None = Field(description="set when grouped by model")
    turns: int
    failed: int
    failed_provider: int
    failed_timeout: int
    failed_limit: int
    failed_cancelled: int
    failed_other: int
    input_tokens: int
    output_tokens: int
    cost: float
    response_time_mean: float | None = Field(description="seconds, successful turns")
    response_time_p50: float | None = Field(description="seconds, from the rollups' histograms")
    response_time_p95: float | None
    tool_calls: int
    delegated_runs: int
    feedback_up: int
    feedback_down: int


class UsageOut(BaseModel):
    start: date = Field(serialization_alias="from")
    end: date = Field(serialization_alias="to")
    group_by: list[str]
    rows: list[UsageRowOut]


Cost = Annotated[Decimal, Field(gt=0, max_digits=18, decimal_places=8)]
Tokens = Annotated[int, Field(gt=0, le=10**15)]


class BudgetIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    scope: BudgetScope
    scope_id: UUID
    max_cost: Cost | None = None
    max_tokens: Tokens | None = None


class BudgetPatch(BaseModel):
    """New limits (null removes one; at least one must remain)."""

    model_config = ConfigDict(extra="forbid")

    max_cost: Cost | None = None
    max_tokens: Tokens | None = None


class BudgetOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: UUID
    scope: BudgetScope
    scope_id: UUID
    max_cost: Decimal | None
    max_tokens: int | None
    period: str = Field(description="the month the used amounts count (YYYY-MM, UTC)")
    used_cost: Decimal
    used_tokens: int
    resets_at: datetime
    created_at: datetime
    updated_at: datetime | None


class BudgetPage(BaseModel):
    """One page, oldest first; ``next_cursor`` (None on the last page) goes back as ``cursor``."""

    items: list[BudgetOut]
    next_cursor: str | None = None


class BudgetStatusOut(BaseModel):
    """A user's own monthly budget, as GET /api/users/me shows it."""

    model_config = ConfigDict(from_attributes=True)

    max_cost: Decimal | None
    max_tokens: int | None
    used_cost: Decimal
    used_tokens: int
    remaining_cost: Decimal | None
    remaining_tokens: int | None
    resets_at: datetime


class FeedbackIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rating: Rating
    comment: Annotated[str, Field(max_length=2000)] | None = None


class FeedbackOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    message_id: UUID
    conversation_id: UUID
    rating: Rating
    comment: str | None
    updated_at: datetime


class MeOut(UserOut):
    budget: BudgetStatusOut | None = Field(
        default=None, description="the caller's monthly budget and what is left of it, if set"
    )
