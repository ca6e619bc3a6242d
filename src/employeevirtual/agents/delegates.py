"""An agent's delegates, checked when they are saved (issue 13).

A delegate is an agent its owner may use: their own or a shared one, never another user's
private agent (an admin's agents follow the same rule: delegation is not an audit read). The
graph of delegates stays acyclic: a save that would close a cycle is refused with the cycle
named. Runs are bounded again at run time (depth cap, visited set), so even a cycle that two
concurrent saves made could not loop.
"""

from __future__ import annotations

from uuid import UUID

from employeevirtual.errors import InvalidInput
from employeevirtual.stores.records import AgentRecord
from employeevirtual.stores.sql.engine import Connection
from employeevirtual.stores.sql.team import TeamReader

__all__ = ["checked_delegates", "find_cycle", "may_delegate_to"]


def may_delegate_to(owner_id: UUID, delegate: AgentRecord) -> bool:
    """Whether an agent owned by ``owner_id`` may ask ``delegate``."""
    return delegate.deleted_at is None and (
        delegate.user_id == owner_id or delegate.visibility == "shared"
    )


async def checked_delegates(
    conn: Connection,
    *,
    owner_id: UUID,
    agent_id: UUID | None,
    wanted: list[UUID],
    max_delegates: int,
) -> list[UUID]:
    """``wanted`` (each once, in order) as stored, or InvalidInput (422) saying what to fix.
    ``agent_id`` None: a new agent, which no other agent can name yet (so no cycle)."""
    wanted = list(dict.fromkeys(wanted))
    if agent_id is not None and agent_id in wanted:
        raise InvalidInput(f"an agent cannot delegate to itself (agent {agent_id})")
    if len(wanted) > max_delegates:
        raise InvalidInput(f"at most {max_delegates} delegates per agent; {len(wanted)} given")
    reader = TeamReader(conn)
    found = await reader.live_agents(wanted)
    missing = [str(i) for i in wanted if i not in found or not may_delegate_to(owner_id, found[i])]
    if missing:
        raise InvalidInput(
            "delegates not found (an agent must be yours or shared to be a delegate): "
            + ", ".join(missing)
        )
    if agent_id is not None:
        cycle = await find_cycle(reader, agent_id, wanted)
        if cycle:
            names = await reader.live_agents(cycle)
            path = " -> ".join(
                f"{names[i].name} ({i})" if i in names else str(i) for i in [agent_id, *cycle]
            )
            raise InvalidInput(f"these delegates would make a cycle: {path}")
    return wanted


async def find_cycle(reader: TeamReader, agent_id: UUID, delegates: list[UUID]) -> list[UUID]:
    """The shortest path from ``agent_id``'s new ``delegates`` back to ``agent_id`` (ending
    with it), or [] when there is none. Breadth first, one query per level."""
    parent: dict[UUID, UUID | None] = dict.fromkeys(delegates)
    level = list(delegates)
    while level:
        edges = await reader.delegate_ids(level)
        following: list[UUID] = []
        for node in level:
            for nxt in edges.get(node, []):
                if nxt == agent_id:
                    path = [nxt, node]
                    step = parent[node]
                    while step is not None:
                        path.append(step)
                        step = parent[step]
                    return path[::-1]
                if nxt not in parent:
                    parent[nxt] = node
                    following.append(nxt)
        level = following
    return []
