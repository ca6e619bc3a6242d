"""The HTTP server and what sits in front of it (issue 8), and which process runs the background
jobs."""

from __future__ import annotations

import ipaddress
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, field_validator
from pydantic_settings import NoDecode

from employeevirtual.settings.lists import split_list

__all__ = ["ServerSettings"]


class ServerSettings(BaseModel):
    forwarded_allow_ips: Annotated[list[str], NoDecode] = Field(
        default=[],
        description="proxies whose X-Forwarded-For/-Proto and X-Request-ID are believed "
        "(comma-separated addresses or networks, '*' for any); empty: none",
    )
    max_header_bytes: int = Field(
        default=16_384, ge=1024, description="request line + headers; larger: 400 and close"
    )
    header_timeout_seconds: float = Field(
        default=10.0, gt=0, description="a connection must send its request headers within this"
    )
    keep_alive_seconds: int = Field(default=5, ge=1, description="idle keep-alive connections")
    max_connections: int = Field(
        default=1000, ge=1, description="connections + running requests at once; beyond: 503"
    )

    background_jobs: bool = Field(
        default=True,
        description="run the shared background jobs (relay, reconciler, key purge, exports, "
        "erasure, retention, ingestion, rollups) in this server; false on API processes when "
        "an `employeevirtual worker` runs them",
    )

    gc_young_threshold: int = Field(
        default=10_000,
        ge=0,
        description="new container objects that start a collection of Python's youngest GC "
        "generation (Python's own default: 700; 0 keeps Python's)",
    )

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @field_validator("forwarded_allow_ips", mode="before")
    @classmethod
    def _split_proxies(cls, value: Any) -> Any:
        return split_list(value, ",")

    @field_validator("forwarded_allow_ips")
    @classmethod
    def _valid_proxies(cls, value: list[str]) -> list[str]:
        for entry in value:
            if entry != "*":
                try:
                    ipaddress.ip_network(entry, strict=False)
                except ValueError:
                    raise ValueError(
                        f"EV_FORWARDED_ALLOW_IPS: {entry!r} is not an IP address or network"
                    ) from None
        return value
