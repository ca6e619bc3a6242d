"""What administrators do to accounts: list users, change role, (de)activate; all audited.

A deactivated user's tokens and API keys stop working on the next request, because every
request loads the user and checks ``is_active`` (see ``api.deps.current_user``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncEngine

from employeevirtual.errors import Conflict, NotFound
from employeevirtual.stores.records import UserRecord
from employeevirtual.stores.sql.audit import AuditRepository
from employeevirtual.stores.sql.engine import read_connection, write_transaction
from employeevirtual.stores.sql.users import UserChanges, UserReader, UserRepository

__all__ = ["AdminService", "UserChanges"]


class AdminService:
    def __init__(self, *, engine: AsyncEngine) -> None:
        self.engine = engine

    async def list_users(
        self,
        admin: UserRecord,
        *,
        limit: int,
        after_email: str | None,
        client_ip: str | None = None,
    ) -> tuple[list[UserRecord], bool]:
        """One page of accounts; each listing leaves an audit row (people's data) before it
        is returned."""
        async with read_connection(self.engine) as conn:
            rows = await UserReader(conn).list_page(limit=limit + 1, after_email=after_email)
        rows, more = rows[:limit], len(rows) > limit
        async with write_transaction(self.engine) as conn:
            await AuditRepository(conn).record(
                action="user.audit_list",
                actor_id=admin.id,
                target_type="user",
                details={"count": len(rows), "after": after_email is not None},
                client_ip=client_ip,
                now=datetime.now(UTC),
            )
        return rows, more

    async def update_user(
        self, admin: UserRecord, user_id: UUID, changes: UserChanges, *, client_ip: str | None
    ) -> UserRecord:
        if user_id == admin.id and changes.model_fields_set:
            raise Conflict(
                "you cannot change your own role or deactivate yourself; ask another admin"
            )
        now = datetime.now(UTC)
        async with write_transaction(self.engine) as conn:
            repo = UserRepository(conn)
            updated = await repo.get(user_id)
            if updated is None:
                raise NotFound(f"user {user_id} not found")
            if changes.model_fields_set:
                values = changes.model_dump(exclude_unset=True)
                updated = await repo.update(user_id, changes, now=now)
                await AuditRepository(conn).record(
                    action="user.update",
                    actor_id=admin.id,
                    target_type="user",
                    target_id=str(user_id),
                    details={k: values[k] for k in sorted(values)},
                    client_ip=client_ip,
                    now=now,
                )
        return updated
