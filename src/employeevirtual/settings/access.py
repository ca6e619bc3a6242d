"""Accounts and tokens, access control and resource limits (issue 5)."""

from __future__ import annotations

from typing import Self

from pydantic import BaseModel, Field, SecretStr, model_validator

__all__ = ["AccessSettings"]


class AccessSettings(BaseModel):
    secret_key: SecretStr | None = Field(
        default=None, description="JWT signing key; default: generated and kept in the data dir"
    )
    jwt_issuer: str = "employeevirtual"
    jwt_audience: str = "employeevirtual-api"
    access_token_minutes: int = Field(default=60, ge=1, le=60 * 24 * 30)
    allow_signup: bool = True
    first_user_admin: bool = Field(
        default=True,
        description="the first account to sign up becomes the admin (once per installation); "
        "false: admins only via `employeevirtual create-admin`",
    )

    password_min_length: int = Field(default=10, ge=8, le=128)
    login_max_failures: int = Field(
        default=5, ge=1, description="free failed logins per account+address, then delays"
    )
    login_window_seconds: int = Field(default=900, ge=1, description="failures remembered")
    login_delay_base_seconds: int = Field(default=1, ge=1, description="first delay, doubling")
    login_delay_max_seconds: int = Field(default=300, ge=1)
    login_address_max_failures: int = Field(
        default=100, ge=1, description="failed logins per address (all accounts) per window"
    )
    rate_limit_window_seconds: int = Field(default=60, ge=1)
    rate_limit_global: int = Field(default=600, ge=1, description="requests per client address")
    rate_limit_chat: int = Field(default=30, ge=1, description="chat turns per user")
    rate_limit_prefix: str = Field(default="ev:rl:", description="Redis key prefix")
    max_concurrent_turns: int = Field(default=2, ge=1, description="chat turns per user at once")
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    max_api_keys_per_user: int = Field(default=20, ge=1)
    max_agents_per_user: int = Field(default=100, ge=1, description="live agents one user owns")
    max_conversations_per_user: int = Field(
        default=10_000,
        ge=1,
        description="conversations one user keeps (archived ones count); a turn that would "
        "start one more is refused with 409 until old ones are deleted",
    )
    api_key_touch_seconds: int = Field(default=60, ge=1, description="last_used_at granularity")
    cors_origins: list[str] = []
    cors_allow_credentials: bool = False
    hsts_seconds: int = Field(default=0, ge=0, description="0: no Strict-Transport-Security")

    @model_validator(mode="after")
    def _no_wildcard_with_credentials(self) -> Self:
        if self.cors_allow_credentials and "*" in self.cors_origins:
            raise ValueError(
                "EV_CORS_ORIGINS='*' cannot be combined with EV_CORS_ALLOW_CREDENTIALS=true; "
                "list the allowed origins explicitly"
            )
        return self
