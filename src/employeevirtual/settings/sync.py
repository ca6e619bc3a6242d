"""Keeping both stores in step (relay, reconciler, idempotency keys) and the reliability of servers
and of the embedded store (issue 9)."""

from __future__ import annotations

from pydantic import BaseModel, Field

__all__ = ["SyncSettings"]


class SyncSettings(BaseModel):
    # keeping both stores in step (sync/): relay, reconciler, alert, idempotency keys
    sync_relay_enabled: bool = Field(
        default=True, description="run the relay inside the server (or only `sync run`)"
    )
    sync_interval_seconds: float = Field(default=1.0, gt=0, description="relay poll when idle")
    sync_grace_seconds: float = Field(
        default=2.0, ge=0, description="leave a conversation this long for its turn's own write"
    )
    sync_batch_size: int = Field(default=200, ge=1, le=10_000)
    sync_max_backoff_seconds: float = Field(default=30.0, gt=0)
    sync_ack_seconds: float = Field(
        default=0.5,
        gt=0,
        description="flush of the turns' sync acks and their batched chat_analytics documents "
        "(a run reaches chat_analytics up to this long after its turn)",
    )
    sync_alert_seconds: float = Field(
        default=60.0, gt=0, description="alert when the oldest unsynced message is older"
    )
    sync_reconcile_seconds: float = Field(
        default=600.0, ge=0, description="periodic reconcile-and-repair; 0 turns it off"
    )
    sync_check_seconds: float = Field(
        default=30.0,
        ge=0,
        description="cheap loss check (SQL's synced counts vs MongoDB's); 0 turns it off",
    )
    # reliability (issue 9): liveness of servers, supervision of the embedded store, shutdown
    instance_heartbeat_seconds: float = Field(
        default=5.0, gt=0, description="SQL heartbeat of this server (also the SQL write probe)"
    )
    instance_dead_seconds: float = Field(
        default=20.0, gt=0, description="a server silent this long is gone: its keys are free"
    )
    mongodb_breaker_seconds: float = Field(
        default=5.0, gt=0, description="while MongoDB is unreachable, calls fail at once this long"
    )
    secantus_probe_seconds: float = Field(
        default=2.0, gt=0, description="write probe of the embedded SecantusDB"
    )
    secantus_write_failures: int = Field(
        default=3, ge=1, description="failed write probes in a row before it is restarted"
    )
    shutdown_drain_seconds: float = Field(
        default=10.0, ge=0, description="on stop, how long the relay may copy what is owed"
    )
    idempotency_ttl_seconds: int = Field(default=86_400, ge=86_400)
    idempotency_lease_seconds: float | None = Field(
        default=None, gt=0, description="a pending key's lease; default agent timeout + 30 s"
    )
