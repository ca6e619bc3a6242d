"""People's data (issue 15): export, erasure, retention."""

from __future__ import annotations

from pydantic import BaseModel, Field

__all__ = ["PeopleSettings"]


class PeopleSettings(BaseModel):
    export_ttl_hours: float = Field(
        default=24.0, gt=0, description="a finished export's ZIP is deleted after this"
    )
    export_min_interval_seconds: int = Field(
        default=600, ge=0, description="one export per user per this many seconds (429)"
    )
    erasure_lease_seconds: float = Field(
        default=60.0, gt=0, description="a running erasure silent this long is taken over"
    )
    erasure_interval_seconds: float = Field(default=5.0, gt=0, description="erasure worker poll")
    retention_interval_seconds: float = Field(
        default=3600.0, ge=0, description="how often the retention purge runs; 0 turns it off"
    )
    retention_batch_size: int = Field(default=500, ge=1, le=10_000)
    retention_user_activities_days: int = Field(default=0, ge=0, description="0 = forever")
    retention_system_logs_days: int = Field(default=0, ge=0, description="0 = forever")
    retention_chat_analytics_days: int = Field(default=0, ge=0, description="0 = forever")
    retention_audit_log_days: int = Field(default=0, ge=0, description="0 = forever")
    retention_archived_conversations_days: int = Field(
        default=0, ge=0, description="archived conversations idle this long are deleted"
    )
    retention_inactive_conversations_days: int = Field(
        default=0, ge=0, description="any conversation idle this long is deleted"
    )
    fault_crash_erasure_after_step: str | None = Field(
        default=None, description="TEST ONLY: os._exit(137) after this erasure step"
    )
