"""Usage analytics: GET /api/analytics/usage (JSON or CSV)."""

from __future__ import annotations

import csv
import io
from datetime import date
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import Depends, Query
from fastapi.responses import Response

from employeevirtual.analytics.service import AnalyticsService, UsageQuery
from employeevirtual.api.analytics_schemas import UsageOut, UsageRowOut
from employeevirtual.api.deps import CurrentUser, from_runtime
from employeevirtual.api.routing import Router
from employeevirtual.errors import InvalidInput

router = Router(prefix="/api/analytics", tags=["analytics"])


AnalyticsDep = Annotated[AnalyticsService, Depends(from_runtime(lambda r: r.analytics))]

CSV_FIELDS = list(UsageRowOut.model_fields)


def _group_by(values: list[str]) -> tuple[str, ...]:
    """``group_by=day&group_by=agent`` or ``group_by=day,agent``."""
    out: list[str] = []
    for value in values:
        out.extend(part.strip() for part in value.split(",") if part.strip())
    if len(set(out)) != len(out):
        raise InvalidInput("group_by lists a dimension twice")
    return tuple(out)


@router.get(
    "/usage",
    response_model=UsageOut,
    responses={200: {"content": {"text/csv": {}}, "description": "JSON, or CSV with format=csv"}},
)
async def usage(
    user: CurrentUser,
    analytics: AnalyticsDep,
    start: Annotated[date, Query(alias="from", description="first day (UTC), inclusive")],
    end: Annotated[date, Query(alias="to", description="last day (UTC), inclusive")],
    group_by: Annotated[
        list[str], Query(description="any of day, agent, user, model (repeat or comma-separate)")
    ] = [],  # noqa: B006 - FastAPI copies defaults
    agent_id: UUID | None = None,
    user_id: UUID | None = None,
    model: Annotated[str | None, Query(max_length=200)] = None,
    format: Literal["json", "csv"] = "json",
) -> Any:
    """Turns, failures by kind, tokens, cost, response time (mean, p50, p95), tool calls,
    delegated runs and feedback, grouped by any of day × agent × user × model. Users see
    their own usage; admins everyone's."""
    query = UsageQuery(
        start=start,
        end=end,
        group_by=_group_by(group_by),
        agent_id=agent_id,
        user_id=user_id,
        model=model,
    )
    rows = [UsageRowOut.model_validate(r) for r in await analytics.usage(user, query)]
    if format == "csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=CSV_FIELDS, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow(
                {k: ("" if v is None else v) for k, v in row.model_dump(mode="json").items()}
            )
        return Response(
            buffer.getvalue(),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="usage-{start}-{end}.csv"'},
        )
    return UsageOut(start=start, end=end, group_by=list(query.group_by), rows=rows)
