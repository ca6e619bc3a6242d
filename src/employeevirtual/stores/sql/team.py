"""Teams of agents (issue 13): the delegate graph read level by level, and a conversation
handed over to another agent. Like every repository, it never commits."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from uuid import UUID

from sqlalchemy import select, update

from employeevirtual.stores.records import AgentRecord, ConversationRecord
from employeevirtual.stores.sql.engine import Connection, WriteConnection
from employeevirtual.stores.sql.rows import agent_from_row, conversation_from_row
from employeevirtual.stores.sql.tables import agents, conversations

__all__ = ["TeamReader", "TeamRepository"]


class TeamReader:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    async def live_agents(self, ids: Iterable[UUID]) -> dict[UUID, AgentRecord]:
        """The agents among ``ids`` that are not deleted, by id (any owner: the caller judges
        who may use which)."""
        wanted = list(dict.fromkeys(ids))
        if not wanted:
            return {}
        query = select(agents).where(agents.c.id.in_(wanted), agents.c.deleted_at.is_(None))
        found = [agent_from_row(r) for r in await self.conn.execute(query)]
        return {a.id: a for a in found}

    async def delegate_ids(self, ids: Iterable[UUID]) -> dict[UUID, list[UUID]]:
        """Each live agent's delegates (the edges of the graph), for the cycle check."""
        wanted = list(dict.fromkeys(ids))
        if not wanted:
            return {}
        a = agents.c
        query = select(a.id, a.delegate_ids).where(a.id.in_(wanted), a.deleted_at.is_(None))
        return {
            row.id: [UUID(str(i)) for i in row.delegate_ids or []]
            for row in await self.conn.execute(query)
        }


class TeamRepository(TeamReader):
    def __init__(self, conn: WriteConnection) -> None:
        super().__init__(conn)

    async def hand_over(
        self, conversation_id: UUID, agent_id: UUID, *, now: datetime
    ) -> ConversationRecord | None:
        """The conversation's current agent becomes ``agent_id``: the row after the update."""
        statement = (
            update(conversations)
            .where(conversations.c.id == conversation_id)
            .values(agent_id=agent_id, updated_at=now)
            .returning(conversations)
        )
        row = (await self.conn.execute(statement)).first()
        return conversation_from_row(row) if row else None
