"""What the service itself needs: API keys, Idempotency-Keys, one-time claims, the running
server instances."""

from __future__ import annotations

from sqlalchemy import Column, ForeignKey, Index, Integer, String, Table, Unicode, Uuid

from employeevirtual.stores.sql.tables.schema import metadata
from employeevirtual.stores.sql.types import UTCDateTime

__all__ = ["api_keys", "claims", "idempotency_keys", "server_instances"]


api_keys = Table(
    "api_keys",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("user_id", Uuid, ForeignKey("empl.users.id"), nullable=False),
    Column("name", Unicode(200), nullable=False),
    # the first characters of the key, shown in listings; the key itself is never stored
    Column("prefix", String(20), nullable=False),
    Column("digest", String(64), nullable=False, unique=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("last_used_at", UTCDateTime, nullable=True),
    Column("revoked_at", UTCDateTime, nullable=True),
    Index("IX_api_keys_user_id", "user_id"),
)

# One row per (user, Idempotency-Key) of POST /api/chat/agent: 'pending' while its owner (``token``)
# holds the lease, 'complete' with the response once the turn committed (same transaction).
idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("user_id", Uuid, ForeignKey("empl.users.id"), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("fingerprint", String(64), nullable=False),
    Column("status", String(20), nullable=False),
    Column("token", Uuid, nullable=False),
    Column("locked_until", UTCDateTime, nullable=True),
    Column("response_status", Integer, nullable=True),
    Column("response_body", Unicode(), nullable=True),
    Column("conversation_id", Uuid, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("completed_at", UTCDateTime, nullable=True),
    # the server instance (server_instances.id) running the request while 'pending'
    Column("owner_id", Uuid, nullable=True),
    Index("IX_idempotency_keys_created_at", "created_at"),
)

# One row per running server process, whatever host it runs on: the liveness an Idempotency-Key's
# owner is judged by. A live server moves ``heartbeat_at`` every few seconds; a clean stop sets
# ``stopped_at``. Rows of servers gone for a day are purged.
server_instances = Table(
    "server_instances",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("hostname", Unicode(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("boot", String(64), nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    Column("heartbeat_at", UTCDateTime, nullable=False),
    Column("stopped_at", UTCDateTime, nullable=True),
    Index("IX_server_instances_heartbeat_at", "heartbeat_at"),
)

# One-time claims: a row per name, its primary key making each claim atomic on every backend
# ('first_admin': the first registered account became the admin; nobody else can).
claims = Table(
    "claims",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("claimed_by", Uuid, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
)
