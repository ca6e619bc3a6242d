from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query, Request, Response, status

from employeevirtual.agents.models import UnknownModelError
from employeevirtual.agents.tools import TOOLS
from employeevirtual.api.deps import (
    AgentsDep,
    ClientIP,
    CurrentUser,
    KnowledgeDep,
    RuntimeDep,
    SettingsDep,
)
from employeevirtual.api.params import encode_cursor, page_size, parse_time_cursor
from employeevirtual.api.schemas import AgentIn, AgentOut, AgentPatch
from employeevirtual.errors import InvalidInput
from employeevirtual.knowledge.service import KnowledgeService
from employeevirtual.runtime import Runtime
from employeevirtual.settings import Settings
from employeevirtual.stores.records import UserRecord
from employeevirtual.stores.sql.agents import AgentChanges, AgentScope, NewAgent

router = APIRouter(prefix="/api/agents", tags=["agents"])


def _validated(fields: dict[str, Any], runtime: Runtime) -> dict[str, Any]:
    """Check what a body may set against the registries and limits; InvalidInput otherwise."""
    settings = runtime.settings
    if fields.get("model") is not None:
        try:
            runtime.models.check(fields["model"])
        except UnknownModelError as exc:
            raise InvalidInput(str(exc)) from None
    if fields.get("tools") is not None:
        tools = list(dict.fromkeys(fields["tools"]))
        unknown = [t for t in tools if t not in TOOLS]
        if unknown:
            raise InvalidInput(
                f"unknown tools {unknown}; valid tools are: {', '.join(sorted(TOOLS))}"
            )
        if len(tools) > settings.max_tools_per_agent:
            raise InvalidInput(f"at most {settings.max_tools_per_agent} tools per agent")
        fields["tools"] = tools
    instructions = fields.get("instructions")
    if instructions is not None and len(instructions) > settings.max_instructions_chars:
        raise InvalidInput(
            f"instructions are {len(instructions)} characters; "
            f"the limit is {settings.max_instructions_chars}"
        )
    if fields.get("model_settings") is not None:
        fields["model_settings"] = {
            k: v for k, v in fields["model_settings"].items() if v is not None
        }
    return fields


async def _with_knowledge(
    fields: dict[str, Any], user: UserRecord, knowledge: KnowledgeService, settings: Settings
) -> dict[str, Any]:
    """Knowledge bases: the caller's own or shared ones, each once, within the limit."""
    if fields.get("knowledge_base_ids") is None:
        fields.pop("knowledge_base_ids", None)
        return fields
    wanted: list[UUID] = list(dict.fromkeys(fields["knowledge_base_ids"]))
    if len(wanted) > settings.knowledge_max_bases_per_agent:
        raise InvalidInput(
            f"at most {settings.knowledge_max_bases_per_agent} knowledge bases per agent"
        )
    readable = set(await knowledge.readable_bases(user.id, wanted))
    missing = [str(b) for b in wanted if b not in readable]
    if missing:
        raise InvalidInput(
            f"knowledge bases not found (or neither yours nor shared): {', '.join(missing)}"
        )
    fields["knowledge_base_ids"] = [str(b) for b in wanted]
    return fields


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_agent(
    body: AgentIn,
    user: CurrentUser,
    agents: AgentsDep,
    knowledge: KnowledgeDep,
    settings: SettingsDep,
    runtime: RuntimeDep,
    ip: ClientIP,
) -> AgentOut:
    fields = body.model_dump()
    fields["model"] = fields["model"] or settings.default_model
    fields = await _with_knowledge(_validated(fields, runtime), user, knowledge, settings)
    agent = await agents.create(user, NewAgent(**fields), client_ip=ip)
    return AgentOut.of(agent)


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
        next_cursor = encode_cursor(rows[-1].created_at.isoformat(), str(rows[-1].id))
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
    agent_id: UUID,
    body: AgentPatch,
    user: CurrentUser,
    agents: AgentsDep,
    knowledge: KnowledgeDep,
    settings: SettingsDep,
    runtime: RuntimeDep,
    ip: ClientIP,
) -> AgentOut:
    changes = _validated(body.model_dump(exclude_unset=True), runtime)
    changes = await _with_knowledge(changes, user, knowledge, settings)
    if "name" in changes and changes["name"] is None:
        raise InvalidInput("name cannot be null")
    if "memory" in changes and changes["memory"] is None:
        raise InvalidInput('memory cannot be null; send {"enabled": ..., "shared": ...}')
    if "model" in changes and changes["model"] is None:
        changes["model"] = settings.default_model
    return AgentOut.of(await agents.update(user, agent_id, AgentChanges(**changes), client_ip=ip))


@router.delete("/{agent_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_agent(
    agent_id: UUID, user: CurrentUser, agents: AgentsDep, ip: ClientIP
) -> Response:
    await agents.delete(user, agent_id, client_ip=ip)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
