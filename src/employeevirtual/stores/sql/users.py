"""``empl.users``: accounts. Like every repository, it never commits."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from pydantic import BaseModel, ConfigDict
from sqlalchemy import func, insert, select, update

from employeevirtual.stores.records import UserRecord, UserRole
from employeevirtual.stores.sql.engine import Connection, WriteConnection
from employeevirtual.stores.sql.rows import user_from_row
from employeevirtual.stores.sql.tables import users

__all__ = ["NewUser", "UserChanges", "UserReader", "UserRepository"]


@dataclass(frozen=True, slots=True)
class NewUser:
    email: str
    name: str
    password_hash: str
    role: UserRole


class UserChanges(BaseModel):
    """What an administrator may change; only the fields set are written."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    role: UserRole | None = None
    is_active: bool | None = None


class UserReader:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    async def count(self) -> int:
        return int((await self.conn.execute(select(func.count()).select_from(users))).scalar_one())

    async def get(self, user_id: UUID) -> UserRecord | None:
        row = (await self.conn.execute(select(users).where(users.c.id == user_id))).first()
        return user_from_row(row) if row else None

    async def get_by_email(self, email: str) -> UserRecord | None:
        row = (await self.conn.execute(select(users).where(users.c.email == email))).first()
        return user_from_row(row) if row else None

    async def list_page(self, *, limit: int, after_email: str | None) -> list[UserRecord]:
        """Users ordered by email (the admin listing); ``after_email`` is the cursor."""
        query = select(users).order_by(users.c.email).limit(limit)
        if after_email is not None:
            query = query.where(users.c.email > after_email)
        return [user_from_row(r) for r in await self.conn.execute(query)]


class UserRepository(UserReader):
    def __init__(self, conn: WriteConnection) -> None:
        super().__init__(conn)

    async def lock(self, user_id: UUID) -> bool:
        """Lock the user's row until the transaction ends: what serialises the per-user caps
        (count, then insert) on PostgreSQL and SQL Server; SQLite serialises writes anyway.
        Whether the row is there and active, as committed when the lock was granted (a
        deactivation commits before, or waits for this transaction). ``FOR NO KEY UPDATE`` on
        PostgreSQL: it excludes another such lock and the deactivation's update, but not the key
        share a row inserted with a foreign key to the user takes (a turn's memory, written
        before its conversation: two first turns of one user would otherwise deadlock)."""
        query = (
            select(users.c.is_active)
            .where(users.c.id == user_id)
            .with_for_update(key_share=True)
            .with_hint(users, "WITH (UPDLOCK, ROWLOCK)", dialect_name="mssql")
        )
        return bool((await self.conn.execute(query)).scalar_one_or_none())

    async def create(self, new: NewUser, *, now: datetime) -> UserRecord:
        statement = (
            insert(users)
            .values(
                id=uuid.uuid4(),
                email=new.email,
                name=new.name,
                password_hash=new.password_hash,
                role=new.role,
                is_active=True,
                created_at=now,
            )
            .returning(users)
        )
        return user_from_row((await self.conn.execute(statement)).one())

    async def update(self, user_id: UUID, changes: UserChanges, *, now: datetime) -> UserRecord:
        values = changes.model_dump(exclude_unset=True)
        statement = (
            update(users)
            .where(users.c.id == user_id)
            .values(**values, updated_at=now)
            .returning(users)
        )
        return user_from_row((await self.conn.execute(statement)).one())
