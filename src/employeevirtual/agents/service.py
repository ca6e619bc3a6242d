"""Agent definitions: create, list, read, update, delete (soft), each audited."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncEngine

from employeevirtual.errors import NotFound
from employeevirtual.stores.records import AgentRecord, UserRecord
from employeevirtual.stores.sql.agents import (
    AgentChanges,
    AgentReader,
    AgentRepository,
    NewAgent,
)
from employeevirtual.stores.sql.audit import AuditRepository
from employeevirtual.stores.sql.engine import read_connection, write_transaction

__all__ = ["AgentService"]


class AgentService:
    def __init__(self, *, engine: AsyncEngine) -> None:
        self.engine = engine

    async def create(
        self, user: UserRecord, new: NewAgent, *, client_ip: str | None
    ) -> AgentRecord:
        now = datetime.now(UTC)
        async with write_transaction(self.engine) as conn:
            agent = await AgentRepository(conn).create(new, user_id=user.id, now=now)
            await AuditRepository(conn).record(
                action="agent.create",
                actor_id=user.id,
                target_type="agent",
                target_id=str(agent.id),
                details={"name": agent.name, "model": agent.model},
                client_ip=client_ip,
                now=now,
            )
        return agent

    async def list(self, user: UserRecord) -> list[AgentRecord]:
        async with read_connection(self.engine) as conn:
            return await AgentReader(conn).list_visible(user)

    async def get(self, user: UserRecord, agent_id: UUID) -> AgentRecord:
        async with read_connection(self.engine) as conn:
            agent = await AgentReader(conn).get_visible(agent_id, user)
        if agent is None:
            raise NotFound(f"agent {agent_id} not found")
        return agent

    async def _owned(self, repo: AgentRepository, user: UserRecord, agent_id: UUID) -> AgentRecord:
        """A shared agent is visible to all but changed only by its owner (or an admin)."""
        agent = await repo.get_visible(agent_id, user)
        if agent is None or (agent.user_id != user.id and not user.is_admin):
            raise NotFound(f"agent {agent_id} not found")
        return agent

    async def update(
        self, user: UserRecord, agent_id: UUID, changes: AgentChanges, *, client_ip: str | None
    ) -> AgentRecord:
        now = datetime.now(UTC)
        async with write_transaction(self.engine) as conn:
            repo = AgentRepository(conn)
            await self._owned(repo, user, agent_id)
            await repo.update(agent_id, changes, now=now)
            await AuditRepository(conn).record(
                action="agent.update",
                actor_id=user.id,
                target_type="agent",
                target_id=str(agent_id),
                details={"fields": changes.fields()},
                client_ip=client_ip,
                now=now,
            )
            updated = await repo.get_visible(agent_id, user)
        assert updated is not None
        return updated

    async def delete(self, user: UserRecord, agent_id: UUID, *, client_ip: str | None) -> None:
        now = datetime.now(UTC)
        async with write_transaction(self.engine) as conn:
            repo = AgentRepository(conn)
            agent = await self._owned(repo, user, agent_id)
            await repo.soft_delete(agent_id, now=now)
            await AuditRepository(conn).record(
                action="agent.delete",
                actor_id=user.id,
                target_type="agent",
                target_id=str(agent_id),
                details={"name": agent.name},
                client_ip=client_ip,
                now=now,
            )
