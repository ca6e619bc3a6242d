"""``empl.api_keys``: a user's API keys (digests only). Like every repository, it never commits."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from sqlalchemy import func, insert, select, update

from employeevirtual.stores.records import ApiKeyRecord, UserRecord
from employeevirtual.stores.sql.engine import Connection, WriteConnection
from employeevirtual.stores.sql.rows import api_key_from_row, rowcount, user_from_row
from employeevirtual.stores.sql.tables import api_keys, users

__all__ = ["ApiKeyReader", "ApiKeyRepository", "KeyHolder", "NewApiKey"]


@dataclass(frozen=True, slots=True)
class NewApiKey:
    name: str
    prefix: str
    digest: str


@dataclass(frozen=True, slots=True)
class KeyHolder:
    key: ApiKeyRecord
    user: UserRecord


class ApiKeyReader:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    async def count_active(self, user_id: UUID) -> int:
        query = (
            select(func.count())
            .select_from(api_keys)
            .where(api_keys.c.user_id == user_id, api_keys.c.revoked_at.is_(None))
        )
        return int((await self.conn.execute(query)).scalar_one())

    async def list_active(self, user_id: UUID) -> list[ApiKeyRecord]:
        query = (
            select(api_keys)
            .where(api_keys.c.user_id == user_id, api_keys.c.revoked_at.is_(None))
            .order_by(api_keys.c.created_at.desc(), api_keys.c.id)
        )
        return [api_key_from_row(r) for r in await self.conn.execute(query)]

    async def find_active(self, digest: str) -> KeyHolder | None:
        """The unrevoked key with this digest and its user, in one round trip."""
        key_cols = [c.label(f"k_{c.name}") for c in api_keys.c if c.name != "digest"]
        query = (
            select(users, *key_cols)
            .join(api_keys, api_keys.c.user_id == users.c.id)
            .where(api_keys.c.digest == digest, api_keys.c.revoked_at.is_(None))
        )
        row = (await self.conn.execute(query)).first()
        return KeyHolder(api_key_from_row(row, "k_"), user_from_row(row)) if row else None


class ApiKeyRepository(ApiKeyReader):
    def __init__(self, conn: WriteConnection) -> None:
        super().__init__(conn)

    async def create(self, new: NewApiKey, *, user_id: UUID, now: datetime) -> ApiKeyRecord:
        statement = (
            insert(api_keys)
            .values(
                id=uuid.uuid4(),
                user_id=user_id,
                name=new.name,
                prefix=new.prefix,
                digest=new.digest,
                created_at=now,
            )
            .returning(*(c for c in api_keys.c if c.name != "digest"))
        )
        return api_key_from_row((await self.conn.execute(statement)).one())

    async def revoke(self, key_id: UUID, *, user_id: UUID, now: datetime) -> bool:
        result = await self.conn.execute(
            update(api_keys)
            .where(
                api_keys.c.id == key_id,
                api_keys.c.user_id == user_id,
                api_keys.c.revoked_at.is_(None),
            )
            .values(revoked_at=now)
        )
        return rowcount(result) > 0

    async def touch(self, key_id: UUID, *, now: datetime) -> None:
        await self.conn.execute(
            update(api_keys).where(api_keys.c.id == key_id).values(last_used_at=now)
        )
