"""People's data (issue 15): exports and erasures."""

from __future__ import annotations

from sqlalchemy import Column, ForeignKey, Index, Integer, String, Table, Unicode, Uuid, text

from employeevirtual.stores.sql.tables.schema import metadata
from employeevirtual.stores.sql.types import UTCDateTime

__all__ = ["erasure_jobs", "export_jobs"]


# One row per export (GDPR art. 15/20): the ZIP is built in the background into the data dir.
export_jobs = Table(
    "export_jobs",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("user_id", Uuid, ForeignKey("empl.users.id"), nullable=False),
    # who asked: the user, or an admin (then audited)
    Column("requested_by", Uuid, nullable=True),
    Column("status", String(20), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("completed_at", UTCDateTime, nullable=True),
    Column("expires_at", UTCDateTime, nullable=True),
    Column("size_bytes", Integer, nullable=True),
    Column("error", Unicode(2000), nullable=True),
    Index("IX_export_jobs_user_id", "user_id"),
    Index("IX_export_jobs_created_at", "created_at"),
)

# One row per erasure (GDPR art. 17): the job while it runs, the tombstone once done. The
# subject's id is cleared when the job finishes; what stays is a random id, the times, and who
# asked (``requested_by`` 'self' or 'admin', with the admin's id).
erasure_jobs = Table(
    "erasure_jobs",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("user_id", Uuid, nullable=True),
    Column("requested_by", String(20), nullable=False),
    Column("actor_id", Uuid, nullable=True),
    Column("shared_agents", String(20), nullable=False),
    Column("heir_id", Uuid, nullable=True),
    Column("status", String(20), nullable=False),
    Column("step", String(50), nullable=False),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=True),
    Column("completed_at", UTCDateTime, nullable=True),
    Index("IX_erasure_jobs_status", "status"),
    Index("IX_erasure_jobs_user_id", "user_id"),
)
