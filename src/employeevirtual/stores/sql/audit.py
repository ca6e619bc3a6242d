"""``empl.audit_log``: who did what to what, in the same transaction as the action."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import insert

from employeevirtual.stores.sql.engine import WriteConnection
from employeevirtual.stores.sql.tables import audit_log

__all__ = ["AuditRepository"]


class AuditRepository:
    def __init__(self, conn: WriteConnection) -> None:
        self.conn = conn

    async def record(
        self,
        *,
        action: str,
        actor_id: UUID | None,
        now: datetime,
        target_type: str | None = None,
        target_id: str | None = None,
        details: dict[str, Any] | None = None,
        client_ip: str | None = None,
    ) -> None:
        await self.conn.execute(
            insert(audit_log).values(
                id=uuid.uuid4(),
                actor_id=actor_id,
                action=action,
                target_type=target_type,
                target_id=target_id,
                details=details,
                client_ip=client_ip,
                created_at=now,
            )
        )
