"""Knowledge bases: owner-scoped rows, visible to others when shared. Never commits."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict
from sqlalchemy import delete, func, insert, or_, select, update
from sqlalchemy.engine import Row

from employeevirtual.stores.records import KnowledgeBaseRecord, UserRecord, Visibility
from employeevirtual.stores.sql.engine import Connection
from employeevirtual.stores.sql.keyset import after_desc
from employeevirtual.stores.sql.tables import knowledge_bases, knowledge_documents

__all__ = ["KnowledgeBaseChanges", "KnowledgeBaseRepository", "NewKnowledgeBase"]


@dataclass(frozen=True, slots=True)
class NewKnowledgeBase:
    """A new base; its id, owner and timestamps are the repository's to set."""

    name: str
    description: str | None = None
    visibility: Visibility = "private"


class KnowledgeBaseChanges(BaseModel):
    """A partial update; only the fields set are written."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str | None = None
    description: str | None = None
    visibility: Visibility | None = None

    def fields(self) -> list[str]:
        return sorted(self.model_fields_set)


kb = knowledge_bases.c


def _base(row: Row[Any]) -> KnowledgeBaseRecord:
    m = row._mapping
    return KnowledgeBaseRecord(
        id=m["id"],
        user_id=m["user_id"],
        name=m["name"],
        description=m["description"],
        visibility=m["visibility"],
        created_at=m["created_at"],
        updated_at=m["updated_at"],
        document_count=int(m.get("document_count") or 0),
    )


def _readable_by(user_id: UUID, *, is_admin: bool = False) -> Any:
    if is_admin:
        return kb.id.is_not(None)
    return or_(kb.user_id == user_id, kb.visibility == "shared")


class KnowledgeBaseRepository:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def _select(self) -> Any:
        count = (
            select(func.count())
            .select_from(knowledge_documents)
            .where(knowledge_documents.c.base_id == kb.id)
            .scalar_subquery()
            .label("document_count")
        )
        return select(knowledge_bases, count)

    async def get_readable(self, base_id: UUID, user: UserRecord) -> KnowledgeBaseRecord | None:
        query = self._select().where(
            kb.id == base_id, _readable_by(user.id, is_admin=user.is_admin)
        )
        row = (await self.conn.execute(query)).first()
        return _base(row) if row else None

    async def list_readable(
        self, user: UserRecord, *, limit: int, after: tuple[datetime, UUID] | None
    ) -> list[KnowledgeBaseRecord]:
        """Newest first; ``after`` is the (created_at, id) of the previous page's last row."""
        query = (
            self._select()
            .where(_readable_by(user.id, is_admin=user.is_admin))
            .order_by(kb.created_at.desc(), kb.id.desc())
            .limit(limit)
        )
        if after is not None:
            query = query.where(after_desc(kb.created_at, kb.id, after))
        return [_base(r) for r in await self.conn.execute(query)]

    async def readable_ids(self, user_id: UUID, base_ids: Sequence[UUID]) -> list[UUID]:
        """Of ``base_ids``, those the (active or not) user may read: their own or shared."""
        if not base_ids:
            return []
        query = select(kb.id).where(kb.id.in_(list(base_ids)), _readable_by(user_id))
        found = {r[0] for r in await self.conn.execute(query)}
        return [b for b in base_ids if b in found]

    async def count_owned(self, user_id: UUID) -> int:
        query = select(func.count()).select_from(knowledge_bases).where(kb.user_id == user_id)
        return int((await self.conn.execute(query)).scalar_one())

    async def create(
        self, new: NewKnowledgeBase, *, user_id: UUID, now: datetime
    ) -> KnowledgeBaseRecord:
        statement = (
            insert(knowledge_bases)
            .values(
                id=uuid.uuid4(),
                user_id=user_id,
                name=new.name,
                description=new.description,
                visibility=new.visibility,
                created_at=now,
                updated_at=now,
            )
            .returning(knowledge_bases)
        )
        return _base((await self.conn.execute(statement)).one())  # no documents yet

    async def update(self, base_id: UUID, changes: KnowledgeBaseChanges, *, now: datetime) -> None:
        values = changes.model_dump(exclude_unset=True)
        await self.conn.execute(
            update(knowledge_bases).where(kb.id == base_id).values(**values, updated_at=now)
        )

    async def delete(self, base_id: UUID) -> None:
        await self.conn.execute(delete(knowledge_bases).where(kb.id == base_id))
