"""Monthly budgets (admins only): /api/admin/budgets."""

from __future__ import annotations

from typing import Annotated, Literal
from uuid import UUID

from fastapi import Depends, status

from employeevirtual.analytics.budgets import BudgetService
from employeevirtual.api.analytics_schemas import BudgetIn, BudgetOut, BudgetPage, BudgetPatch
from employeevirtual.api.deps import AdminUser, ClientIP, SettingsDep, from_runtime
from employeevirtual.api.params import page_size, parse_time_cursor
from employeevirtual.api.routing import Router

router = Router(prefix="/api/admin/budgets", tags=["admin", "budgets"])


BudgetsDep = Annotated[BudgetService, Depends(from_runtime(lambda r: r.budgets))]


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_budget(
    body: BudgetIn, admin: AdminUser, budgets: BudgetsDep, ip: ClientIP
) -> BudgetOut:
    """A monthly budget in cost and/or tokens for a user or an agent (one per user/agent). It
    starts with what was already spent this month; turns past it answer 402."""
    created = await budgets.create(
        admin,
        scope=body.scope,
        scope_id=body.scope_id,
        max_cost=body.max_cost,
        max_tokens=body.max_tokens,
        client_ip=ip,
    )
    return BudgetOut.model_validate(created)


@router.get("")
async def list_budgets(
    _admin: AdminUser,
    budgets: BudgetsDep,
    settings: SettingsDep,
    scope: Literal["user", "agent"] | None = None,
    limit: int | None = None,
    cursor: str | None = None,
) -> BudgetPage:
    """The budgets, oldest first, one page at a time; pass ``next_cursor`` back as ``cursor``."""
    size = page_size(limit, settings.page_limit_default, settings.page_limit_max)
    rows, next_cursor = await budgets.page(
        scope=scope, limit=size, after=parse_time_cursor(cursor) if cursor else None
    )
    return BudgetPage(items=[BudgetOut.model_validate(b) for b in rows], next_cursor=next_cursor)


@router.get("/{budget_id}")
async def get_budget(budget_id: UUID, _admin: AdminUser, budgets: BudgetsDep) -> BudgetOut:
    return BudgetOut.model_validate(await budgets.get(budget_id))


@router.patch("/{budget_id}")
async def update_budget(
    budget_id: UUID, body: BudgetPatch, admin: AdminUser, budgets: BudgetsDep, ip: ClientIP
) -> BudgetOut:
    """Change the limits (the 80%/100% warnings are sent again for the new limits)."""
    changes = body.model_dump(exclude_unset=True)
    return BudgetOut.model_validate(await budgets.update(admin, budget_id, changes, client_ip=ip))


@router.delete("/{budget_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_budget(
    budget_id: UUID, admin: AdminUser, budgets: BudgetsDep, ip: ClientIP
) -> None:
    await budgets.delete(admin, budget_id, client_ip=ip)
