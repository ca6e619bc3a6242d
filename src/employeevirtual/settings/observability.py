"""Usage analytics, budgets, metrics, logs and traces (issue 14), and the outbound URL rules."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, SecretStr

__all__ = ["ObservabilitySettings"]


class ObservabilitySettings(BaseModel):
    analytics_rollup_seconds: float = Field(
        default=300.0, ge=0, description="background rollup round; 0 turns it off"
    )
    analytics_rollup_lookback_days: int = Field(
        default=2, ge=1, le=60, description="complete days rolled up again every round"
    )
    analytics_max_days: int = Field(default=366, ge=1, description="longest usage query range")
    alert_webhook_url: str | None = Field(
        default=None, description="budget warnings are POSTed here (outbound URL rules apply)"
    )
    outbound_allowed_hosts: list[str] = Field(
        default=[], description="hosts outbound calls may reach; empty: any public host"
    )
    outbound_allow_private: bool = Field(
        default=False, description="let outbound calls reach loopback/private/link-local"
    )
    metrics_enabled: bool = Field(
        default=True, description="collect Prometheus metrics (off: no instrumentation at all)"
    )
    metrics_token: SecretStr | None = Field(
        default=None, description="bearer token for /metrics; unset: /metrics answers 404"
    )
    log_format: Literal["text", "json"] = "text"
    otel_enabled: bool = Field(
        default=False, description="OpenTelemetry spans (Pydantic AI + stores); no exporter"
    )
    otel_include_content: bool = Field(
        default=False, description="put prompts, answers and tool arguments/results in the spans"
    )
