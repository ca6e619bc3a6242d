"""Queries over ``empl.api_keys``; like every repository, it never commits."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import func, insert, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from employeevirtual.stores.records import ApiKeyRecord, UserRecord
from employeevirtual.stores.sql.repositories import _user
from employeevirtual.stores.sql.tables import api_keys, users

__all__ = ["ApiKeyRepository"]


def _key(row: Row[Any], prefix: str = "") -> ApiKeyRecord:
    m = row._mapping
    return ApiKeyRecord(
        id=m[f"{prefix}id"],
        user_id=m[f"{prefix}user_id"],
        name=m[f"{prefix}name"],
        prefix=m[f"{prefix}prefix"],
        created_at=m[f"{prefix}created_at"],
        last_used_at=m[f"{prefix}last_used_at"],
        revoked_at=m[f"{prefix}revoked_at"],
    )


class ApiKeyRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def create(
        self, *, user_id: UUID, name: str, prefix: str, digest: str, now: datetime
    ) -> ApiKeyRecord:
        key_id = uuid.uuid4()
        await self.conn.execute(
            insert(api_keys).values(
                id=key_id, user_id=user_id, name=name, prefix=prefix, digest=digest, created_at=now
            )
        )
        return ApiKeyRecord(key_id, user_id, name, prefix, now, None, None)

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
        return [_key(r) for r in await self.conn.execute(query)]

    async def find_active(self, digest: str) -> tuple[ApiKeyRecord, UserRecord] | None:
        """The unrevoked key with this digest and its user, in one round trip."""
        key_cols = [c.label(f"k_{c.name}") for c in api_keys.c if c.name != "digest"]
        query = (
            select(users, *key_cols)
            .join(api_keys, api_keys.c.user_id == users.c.id)
            .where(api_keys.c.digest == digest, api_keys.c.revoked_at.is_(None))
        )
        row = (await self.conn.execute(query)).first()
        return (_key(row, "k_"), _user(row)) if row else None

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
        return bool(result.rowcount)

    async def touch(self, key_id: UUID, *, now: datetime) -> None:
        await self.conn.execute(
            update(api_keys).where(api_keys.c.id == key_id).values(last_used_at=now)
        )
