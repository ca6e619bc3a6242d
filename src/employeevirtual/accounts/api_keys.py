"""API keys: issue (the plaintext is returned once), list, revoke, and authenticate a caller.

``last_used_at`` is written at most once per ``touch_seconds`` per key: the lookup already
reads the stored value, so a request inside that window costs no write, in any process.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from uuid import UUID

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from employeevirtual.errors import Conflict, NotFound
from employeevirtual.security.api_keys import generate_api_key, hash_api_key
from employeevirtual.stores.records import ApiKeyRecord, UserRecord
from employeevirtual.stores.sql.api_keys import ApiKeyReader, ApiKeyRepository, NewApiKey
from employeevirtual.stores.sql.audit import AuditRepository
from employeevirtual.stores.sql.engine import read_connection, write_transaction
from employeevirtual.stores.sql.users import UserRepository

__all__ = ["ApiKeyService"]

log = logging.getLogger(__name__)


class ApiKeyService:
    def __init__(self, *, engine: AsyncEngine, max_per_user: int, touch_seconds: int) -> None:
        self.engine = engine
        self.max_per_user = max_per_user
        self.touch_seconds = touch_seconds

    async def create(
        self, user: UserRecord, *, name: str, client_ip: str | None
    ) -> tuple[ApiKeyRecord, str]:
        """The stored key and its plaintext, which is never kept and cannot be shown again."""
        generated = generate_api_key()
        now = datetime.now(UTC)
        async with write_transaction(self.engine) as conn:
            await UserRepository(conn).lock(user.id)  # concurrent creations count in turn
            repo = ApiKeyRepository(conn)
            if await repo.count_active(user.id) >= self.max_per_user:
                raise Conflict(
                    f"you already have {self.max_per_user} active API keys (the limit); "
                    "revoke one first"
                )
            key = await repo.create(
                NewApiKey(name=name, prefix=generated.prefix, digest=generated.digest),
                user_id=user.id,
                now=now,
            )
            await AuditRepository(conn).record(
                action="api_key.create",
                actor_id=user.id,
                target_type="api_key",
                target_id=str(key.id),
                details={"name": name, "prefix": key.prefix},
                client_ip=client_ip,
                now=now,
            )
        return key, generated.plaintext

    async def list(self, user: UserRecord) -> list[ApiKeyRecord]:
        async with read_connection(self.engine) as conn:
            return await ApiKeyReader(conn).list_active(user.id)

    async def revoke(self, user: UserRecord, key_id: UUID, *, client_ip: str | None) -> None:
        now = datetime.now(UTC)
        async with write_transaction(self.engine) as conn:
            if not await ApiKeyRepository(conn).revoke(key_id, user_id=user.id, now=now):
                raise NotFound(f"API key {key_id} not found")
            await AuditRepository(conn).record(
                action="api_key.revoke",
                actor_id=user.id,
                target_type="api_key",
                target_id=str(key_id),
                client_ip=client_ip,
                now=now,
            )

    async def authenticate(self, plaintext: str) -> UserRecord | None:
        """The key's user when the key exists, is not revoked and the user is active."""
        async with read_connection(self.engine) as conn:
            found = await ApiKeyReader(conn).find_active(hash_api_key(plaintext))
        if found is None:
            return None
        key, user = found.key, found.user
        if not user.is_active:
            return None
        now = datetime.now(UTC)
        if key.last_used_at is None or (now - key.last_used_at).total_seconds() >= (
            self.touch_seconds
        ):
            try:
                async with write_transaction(self.engine) as conn:
                    await ApiKeyRepository(conn).touch(key.id, now=now)
            except SQLAlchemyError as exc:  # bookkeeping only: never fail the request for it
                log.warning("could not record API key use: %s", type(exc).__name__)
        return user
