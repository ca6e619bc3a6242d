"""``empl.agents``: agent definitions, soft-deleted. Like every repository, it never commits."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict
from sqlalchemy import ColumnElement, and_, func, insert, or_, select, true, update

from employeevirtual.stores.records import AgentRecord, BudgetRecord, UserRecord, Visibility
from employeevirtual.stores.sql.budgets import budgets_from_row, with_budgets
from employeevirtual.stores.sql.engine import Connection, WriteConnection
from employeevirtual.stores.sql.keyset import after_desc
from employeevirtual.stores.sql.rows import agent_from_row
from employeevirtual.stores.sql.tables import agents, users

__all__ = ["AgentChanges", "AgentReader", "AgentRepository", "AgentScope", "NewAgent"]

AgentScope = Literal["mine", "shared", "all"]


@dataclass(frozen=True, slots=True)
class NewAgent:
    """A new agent's definition; its owner and timestamps are the repository's to set."""

    name: str
    instructions: str
    model: str
    description: str | None = None
    model_settings: dict[str, Any] = field(default_factory=dict)
    tools: list[str] = field(default_factory=list)
    visibility: Visibility = "private"
    knowledge_base_ids: list[UUID] = field(default_factory=list)
    delegate_ids: list[UUID] = field(default_factory=list)  # checked by AgentService (issue 13)
    memory: dict[str, Any] = field(default_factory=dict)


class AgentChanges(BaseModel):
    """A partial update; only the fields set are written."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str | None = None
    description: str | None = None
    instructions: str | None = None
    model: str | None = None
    model_settings: dict[str, Any] | None = None
    tools: list[str] | None = None
    visibility: Visibility | None = None
    knowledge_base_ids: list[UUID] | None = None
    delegate_ids: list[UUID] | None = None
    memory: dict[str, Any] | None = None

    def fields(self) -> list[str]:
        return sorted(self.model_fields_set)


def _visible_to(user: UserRecord) -> ColumnElement[bool]:
    live = agents.c.deleted_at.is_(None)
    if user.is_admin:
        return live
    return and_(live, or_(agents.c.user_id == user.id, agents.c.visibility == "shared"))


class AgentReader:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    async def get_visible(self, agent_id: UUID, user: UserRecord) -> AgentRecord | None:
        query = select(agents).where(agents.c.id == agent_id, _visible_to(user))
        row = (await self.conn.execute(query)).first()
        return agent_from_row(row) if row else None

    async def get_visible_to_active(
        self, agent_id: UUID, user_id: UUID
    ) -> tuple[AgentRecord, list[BudgetRecord]] | None:
        """``get_visible`` for a user known only by id, who must exist and be active, with the
        user's and the agent's budgets: one statement instead of a user read and an agent read."""
        u, a = users.c, agents.c
        base, budget_columns = with_budgets(agents.join(users, u.id == user_id), u.id, a.id)
        query = (
            select(agents, *budget_columns)
            .select_from(base)
            .where(
                a.id == agent_id,
                a.deleted_at.is_(None),
                u.is_active == true(),
                or_(u.role == "admin", a.user_id == u.id, a.visibility == "shared"),
            )
        )
        row = (await self.conn.execute(query)).first()
        return (agent_from_row(row), budgets_from_row(row._mapping)) if row else None

    async def page(
        self,
        user: UserRecord,
        *,
        scope: AgentScope,
        limit: int,
        after: tuple[datetime, UUID] | None = None,
    ) -> list[AgentRecord]:
        """Newest first, keyset-paged by (created_at, id). ``mine``: the user's own agents;
        ``shared``: others' shared agents; ``all``: everything the user may see (for an admin,
        every agent)."""
        a = agents.c
        where: list[ColumnElement[bool]] = [_visible_to(user)]
        if scope == "mine":
            where.append(a.user_id == user.id)
        elif scope == "shared":
            where += [a.user_id != user.id, a.visibility == "shared"]
        if after is not None:
            where.append(after_desc(a.created_at, a.id, after))
        query = select(agents).where(*where).order_by(a.created_at.desc(), a.id.desc()).limit(limit)
        return [agent_from_row(r) for r in await self.conn.execute(query)]

    async def count_owned(self, user_id: UUID) -> int:
        query = (
            select(func.count())
            .select_from(agents)
            .where(agents.c.user_id == user_id, agents.c.deleted_at.is_(None))
        )
        return int((await self.conn.execute(query)).scalar_one())


class AgentRepository(AgentReader):
    def __init__(self, conn: WriteConnection) -> None:
        super().__init__(conn)

    async def create(self, new: NewAgent, *, user_id: UUID, now: datetime) -> AgentRecord:
        statement = (
            insert(agents)
            .values(
                id=uuid.uuid4(),
                user_id=user_id,
                name=new.name,
                description=new.description,
                instructions=new.instructions,
                model=new.model,
                model_settings=new.model_settings,
                tools=new.tools,
                visibility=new.visibility,
                knowledge_base_ids=[str(b) for b in new.knowledge_base_ids],
                delegate_ids=[str(d) for d in new.delegate_ids],
                memory=new.memory,
                created_at=now,
            )
            .returning(agents)
        )
        return agent_from_row((await self.conn.execute(statement)).one())

    async def update(self, agent_id: UUID, changes: AgentChanges, *, now: datetime) -> AgentRecord:
        values = changes.model_dump(exclude_unset=True)
        if values.get("knowledge_base_ids") is not None:
            values["knowledge_base_ids"] = [str(b) for b in values["knowledge_base_ids"]]
        if values.get("delegate_ids") is not None:
            values["delegate_ids"] = [str(d) for d in values["delegate_ids"]]
        statement = (
            update(agents)
            .where(agents.c.id == agent_id)
            .values(**values, updated_at=now)
            .returning(agents)
        )
        return agent_from_row((await self.conn.execute(statement)).one())

    async def soft_delete(self, agent_id: UUID, *, now: datetime) -> None:
        await self.conn.execute(
            update(agents).where(agents.c.id == agent_id).values(deleted_at=now, updated_at=now)
        )
