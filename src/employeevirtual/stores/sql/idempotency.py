"""``empl.idempotency_keys``: one row per (user, Idempotency-Key) of a chat turn. Like every
repository, it never commits."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal
from uuid import UUID

from sqlalchemy import ColumnElement, delete, insert, or_, select, update

from employeevirtual.stores.sql.engine import Connection, WriteConnection
from employeevirtual.stores.sql.rows import rowcount
from employeevirtual.stores.sql.tables import idempotency_keys

__all__ = ["IdempotencyReader", "IdempotencyRepository", "KeyOwner", "StoredKey"]


@dataclass(frozen=True, slots=True)
class KeyOwner:
    """A key, and the token of the request holding it (the fence against a slow old owner)."""

    user_id: UUID
    key: str
    token: UUID


@dataclass(frozen=True, slots=True)
class StoredKey:
    fingerprint: str
    status: Literal["pending", "complete"]
    token: UUID
    locked_until: datetime | None
    response_status: int | None
    response_body: str | None
    owner_id: UUID | None = None  # the server instance running it while pending


class IdempotencyReader:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    async def get(self, *, user_id: UUID, key: str) -> StoredKey | None:
        k = idempotency_keys.c
        query = select(
            k.fingerprint,
            k.status,
            k.token,
            k.locked_until,
            k.response_status,
            k.response_body,
            k.owner_id,
        ).where(k.user_id == user_id, k.key == key)
        row = (await self.conn.execute(query)).first()
        return StoredKey(*row) if row else None


class IdempotencyRepository(IdempotencyReader):
    def __init__(self, conn: WriteConnection) -> None:
        super().__init__(conn)

    async def insert_pending(
        self,
        owner: KeyOwner,
        *,
        fingerprint: str,
        now: datetime,
        locked_until: datetime,
        owner_id: UUID | None = None,
    ) -> None:
        """Raises IntegrityError when the key exists: run it in a transaction of its own."""
        await self.conn.execute(
            insert(idempotency_keys).values(
                user_id=owner.user_id,
                key=owner.key,
                fingerprint=fingerprint,
                status="pending",
                token=owner.token,
                locked_until=locked_until,
                created_at=now,
                owner_id=owner_id,
            )
        )

    async def take_over(
        self,
        owner: KeyOwner,
        *,
        old_token: UUID,
        locked_until: datetime,
        owner_id: UUID | None = None,
    ) -> bool:
        """Take a pending key whose owner died (its lease ran out, or its server instance is
        known gone), fenced by the old token."""
        result = await self.conn.execute(
            update(idempotency_keys)
            .where(*_pending(owner, old_token))
            .values(token=owner.token, locked_until=locked_until, owner_id=owner_id)
        )
        return rowcount(result) > 0

    async def complete(
        self,
        owner: KeyOwner,
        *,
        status: int,
        body: str,
        conversation_id: UUID | None,
        now: datetime,
    ) -> bool:
        """Store the response; False when this owner lost the key (the caller must roll back)."""
        result = await self.conn.execute(
            update(idempotency_keys)
            .where(*_pending(owner, owner.token))
            .values(
                status="complete",
                response_status=status,
                response_body=body,
                conversation_id=conversation_id,
                completed_at=now,
                locked_until=None,
            )
        )
        return rowcount(result) > 0

    async def release(self, owner: KeyOwner) -> None:
        await self.conn.execute(delete(idempotency_keys).where(*_pending(owner, owner.token)))

    async def purge(self, *, created_before: datetime, now: datetime) -> int:
        """Drop keys older than the retention, except a pending one still under its lease."""
        k = idempotency_keys.c
        result = await self.conn.execute(
            delete(idempotency_keys).where(
                k.created_at < created_before,
                or_(k.status == "complete", k.locked_until < now, k.locked_until.is_(None)),
            )
        )
        return rowcount(result)


def _pending(owner: KeyOwner, token: UUID) -> tuple[ColumnElement[bool], ...]:
    """The fence of every change to a pending key: its user and key, held with ``token``."""
    k = idempotency_keys.c
    return (
        k.user_id == owner.user_id,
        k.key == owner.key,
        k.token == token,
        k.status == "pending",
    )
