"""Agent definitions: create, list, read, update, delete (soft), each audited; every definition
meets ``AgentRules`` and names only knowledge bases its owner may read."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncEngine

from employeevirtual.agents.definitions import AgentDraft, AgentRules
from employeevirtual.agents.delegates import checked_delegates
from employeevirtual.errors import Conflict, InvalidInput, NotFound
from employeevirtual.stores.records import AgentRecord, UserRecord
from employeevirtual.stores.sql.agents import (
    AgentChanges,
    AgentReader,
    AgentRepository,
    AgentScope,
)
from employeevirtual.stores.sql.audit import AuditRepository
from employeevirtual.stores.sql.engine import read_connection, write_transaction
from employeevirtual.stores.sql.knowledge_bases import KnowledgeBaseRepository
from employeevirtual.stores.sql.users import UserRepository

__all__ = ["AgentDraft", "AgentRules", "AgentService", "ToolCheck"]

# (caller, tool names) -> None, or InvalidInput naming the unknown ones and listing the valid
# ones: the built-in tools and ``server/tool`` on the MCP servers the caller may use
ToolCheck = Callable[[UserRecord, Sequence[str]], Awaitable[None]]


def _foreign_private(user: UserRecord, agent: AgentRecord) -> bool:
    """Seen only thanks to the admin role: another user's agent that is not shared."""
    return agent.user_id != user.id and agent.visibility != "shared"


class AgentService:
    def __init__(
        self,
        *,
        engine: AsyncEngine,
        rules: AgentRules,
        max_per_user: int = 100,
        check_tools: ToolCheck | None = None,
        max_delegates: int = 8,
    ) -> None:
        self.engine = engine
        self.rules = rules
        self.max_per_user = max_per_user
        self.check_tools = check_tools
        self.max_delegates = max_delegates

    async def _check_bases(self, user: UserRecord, base_ids: Sequence[UUID] | None) -> None:
        """Knowledge bases: the caller's own or shared ones."""
        if not base_ids:
            return
        async with read_connection(self.engine) as conn:
            readable = set(await KnowledgeBaseRepository(conn).readable_ids(user.id, base_ids))
        missing = [str(b) for b in base_ids if b not in readable]
        if missing:
            raise InvalidInput(
                f"knowledge bases not found (or neither yours nor shared): {', '.join(missing)}"
            )

    async def create(
        self, user: UserRecord, draft: AgentDraft, *, client_ip: str | None = None
    ) -> AgentRecord:
        if self.check_tools is not None and draft.tools:
            await self.check_tools(user, list(dict.fromkeys(draft.tools)))
        new = self.rules.new_agent(draft)
        await self._check_bases(user, new.knowledge_base_ids)
        now = datetime.now(UTC)
        async with write_transaction(self.engine) as conn:
            # the owner's row locked first: concurrent creations count one after the other
            await UserRepository(conn).lock(user.id)
            repo = AgentRepository(conn)
            if await repo.count_owned(user.id) >= self.max_per_user:
                raise Conflict(
                    f"you already have {self.max_per_user} agents (the limit); delete one first"
                )
            if new.delegate_ids:
                delegates = await checked_delegates(
                    conn,
                    owner_id=user.id,
                    agent_id=None,
                    wanted=new.delegate_ids,
                    max_delegates=self.max_delegates,
                )
                new = replace(new, delegate_ids=delegates)
            agent = await repo.create(new, user_id=user.id, now=now)
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

    async def page(
        self,
        user: UserRecord,
        *,
        scope: AgentScope,
        limit: int,
        after: tuple[datetime, UUID] | None = None,
        client_ip: str | None = None,
    ) -> tuple[list[AgentRecord], bool]:
        """One page, newest first, and whether more follow. An admin's ``all`` page that holds
        other users' private agents is audited (before it is returned: no row, no data)."""
        async with read_connection(self.engine) as conn:
            rows = await AgentReader(conn).page(user, scope=scope, limit=limit + 1, after=after)
        rows, more = rows[:limit], len(rows) > limit
        foreign = [a for a in rows if _foreign_private(user, a)]
        if foreign:
            await self._audit_admin_read(
                user,
                action="agent.audit_list",
                target_id=None,
                details={"agents": [str(a.id) for a in foreign]},
                client_ip=client_ip,
            )
        return rows, more

    async def get(
        self, user: UserRecord, agent_id: UUID, *, client_ip: str | None = None
    ) -> AgentRecord:
        """A visible agent; an admin reading another user's private agent (its instructions)
        leaves an audit row first."""
        async with read_connection(self.engine) as conn:
            agent = await AgentReader(conn).get_visible(agent_id, user)
        if agent is None:
            raise NotFound(f"agent {agent_id} not found")
        if _foreign_private(user, agent):
            await self._audit_admin_read(
                user,
                action="agent.audit_read",
                target_id=str(agent.id),
                details={"owner_id": str(agent.user_id)},
                client_ip=client_ip,
            )
        return agent

    async def _audit_admin_read(
        self,
        user: UserRecord,
        *,
        action: str,
        target_id: str | None,
        details: dict[str, Any],
        client_ip: str | None,
    ) -> None:
        async with write_transaction(self.engine) as conn:
            await AuditRepository(conn).record(
                action=action,
                actor_id=user.id,
                target_type="agent",
                target_id=target_id,
                details=details,
                client_ip=client_ip,
                now=datetime.now(UTC),
            )

    async def _owned(self, repo: AgentRepository, user: UserRecord, agent_id: UUID) -> AgentRecord:
        """A shared agent is visible to all but changed only by its owner (or an admin)."""
        agent = await repo.get_visible(agent_id, user)
        if agent is None or (agent.user_id != user.id and not user.is_admin):
            raise NotFound(f"agent {agent_id} not found")
        return agent

    async def update(
        self,
        user: UserRecord,
        agent_id: UUID,
        changes: AgentChanges,
        *,
        client_ip: str | None = None,
    ) -> AgentRecord:
        if self.check_tools is not None and changes.tools:
            await self.check_tools(user, list(dict.fromkeys(changes.tools)))
        changes = self.rules.changes(changes)
        await self._check_bases(user, changes.knowledge_base_ids)
        now = datetime.now(UTC)
        async with write_transaction(self.engine) as conn:
            repo = AgentRepository(conn)
            agent = await self._owned(repo, user, agent_id)
            if changes.delegate_ids is not None:  # the owner's, also when an admin edits
                delegates = await checked_delegates(
                    conn,
                    owner_id=agent.user_id,
                    agent_id=agent_id,
                    wanted=changes.delegate_ids,
                    max_delegates=self.max_delegates,
                )
                changes = changes.model_copy(update={"delegate_ids": delegates})
            updated = await repo.update(agent_id, changes, now=now)
            await AuditRepository(conn).record(
                action="agent.update",
                actor_id=user.id,
                target_type="agent",
                target_id=str(agent_id),
                details={"fields": changes.fields()},
                client_ip=client_ip,
                now=now,
            )
        return updated

    async def delete(
        self, user: UserRecord, agent_id: UUID, *, client_ip: str | None = None
    ) -> None:
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
