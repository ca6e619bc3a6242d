from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import Query, Request, Response, status

from employeevirtual.agents.service import AgentDraft
from employeevirtual.api.deps import AgentsDep, ClientIP, CurrentUser, SettingsDep
from employeevirtual.api.params import page_size
from employeevirtual.api.routing import Router
from employeevirtual.api.schemas import AgentIn, AgentOut, AgentPatch
from employeevirtual.cursors import parse_time_cursor, time_cursor
from employeevirtual.stores.sql.agents import AgentChanges, AgentScope

router = Router(prefix="/api/agents", tags=["agents"])


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_agent(
    body: AgentIn, user: CurrentUser, agents: AgentsDep, ip: ClientIP
) -> AgentOut:
    return AgentOut.of(await agents.create(user, AgentDraft(**body.model_dump()), client_ip=ip))


@router.get(
    "",
    responses={
        200: {
            "description": "one page, newest first; the next page's cursor is in the "
            "X-Next-Cursor header (and Link: rel=next), absent on the last page",
            "headers": {"X-Next-Cursor": {"schema": {"type": "string"}}},
        }
    },
)
async def list_agents(
    user: CurrentUser,
    agents: AgentsDep,
    settings: SettingsDep,
    request: Request,
    response: Response,
    ip: ClientIP,
    limit: int | None = None,
    cursor: str | None = None,
    scope: Annotated[
        AgentScope,
        Query(
            description="mine (default): your agents; shared: other users' shared agents; "
            "all: both (for an admin: every agent, audited)"
        ),
    ] = "mine",
) -> list[AgentOut]:
    """The caller's agents, paged like conversations (``limit``, ``cursor``); other users'
    shared agents only when asked for (``scope``)."""
    size = page_size(limit, settings.page_limit_default, settings.page_limit_max)
    after = parse_time_cursor(cursor) if cursor else None
    rows, more = await agents.page(user, scope=scope, limit=size, after=after, client_ip=ip)
    if more and rows:
        next_cursor = time_cursor(rows[-1].created_at, rows[-1].id)
        response.headers["X-Next-Cursor"] = next_cursor
        next_url = request.url.include_query_params(cursor=next_cursor, limit=size)
        response.headers["Link"] = f'<{next_url.path}?{next_url.query}>; rel="next"'
    return [AgentOut.of(a) for a in rows]


@router.get("/{agent_id}")
async def get_agent(agent_id: UUID, user: CurrentUser, agents: AgentsDep, ip: ClientIP) -> AgentOut:
    """A visible agent; an admin reading another user's private agent is audited."""
    return AgentOut.of(await agents.get(user, agent_id, client_ip=ip))


@router.patch("/{agent_id}")
async def update_agent(
    agent_id: UUID, body: AgentPatch, user: CurrentUser, agents: AgentsDep, ip: ClientIP
) -> AgentOut:
    changes = AgentChanges(**body.model_dump(exclude_unset=True))
    return AgentOut.of(await agents.update(user, agent_id, changes, client_ip=ip))


@router.delete("/{agent_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_agent(
    agent_id: UUID, user: CurrentUser, agents: AgentsDep, ip: ClientIP
) -> Response:
    await agents.delete(user, agent_id, client_ip=ip)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
