"""The team a turn's agent may reach (issue 13), read before it runs: its delegates, theirs,
and so on down to the depth cap; which of them the conversation's user may talk to (handoff
targets); each one's knowledge search for this user. None for an agent without delegates,
so a plain turn pays no extra read."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncEngine

from employeevirtual.agents.knowledge import KnowledgeSearch
from employeevirtual.agents.team import Team
from employeevirtual.stores.records import AgentRecord
from employeevirtual.stores.sql.engine import read_connection
from employeevirtual.stores.sql.team import TeamReader

__all__ = ["resolve_team"]


async def resolve_team(
    engine: AsyncEngine,
    user_id: UUID,
    agent: AgentRecord,
    *,
    max_depth: int,
    max_handoffs: int,
    knowledge_for: Callable[[AgentRecord], KnowledgeSearch | None],
    tools_for: Callable[[AgentRecord], Awaitable[list[Any]]] | None = None,
) -> Team | None:
    if not agent.delegate_ids:
        return None
    # an agent handed the turn runs at depth 0 with its own delegates: one level more
    levels = max_depth + (1 if max_handoffs else 0)
    members: dict[UUID, AgentRecord] = {}
    wanted = list(agent.delegate_ids)
    async with read_connection(engine) as conn:
        reader = TeamReader(conn)
        for _ in range(levels):
            found = await reader.live_agents(i for i in wanted if i not in members)
            if not found:
                break
            members.update(found)
            wanted = [d for a in found.values() for d in a.delegate_ids if d not in members]
            if not wanted:
                break
    usable = frozenset(
        i for i, a in members.items() if a.user_id == user_id or a.visibility == "shared"
    )
    return Team(
        members=members,
        usable=usable,
        max_depth=max_depth,
        max_handoffs=max_handoffs,
        knowledge_for=knowledge_for,
        tools_for=tools_for,
    )
