"""Where the relational store, MongoDB and Redis are."""

from __future__ import annotations

from pydantic import BaseModel, Field, SecretStr

__all__ = ["StoreSettings"]


class StoreSettings(BaseModel):
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy async URL; default: SQLite file in the data directory",
    )
    database_schema: str = Field(
        default="empl", pattern=r"^[a-z_][a-z0-9_]{0,62}$", description="ignored on SQLite"
    )
    sql_echo: bool = False
    # per process: the sum over every API process and worker must stay under the database's
    # connection limit (docs/deploy.md). No overflow by default: an overflow connection is
    # closed when it comes back to a full pool, so under load connections open and close all
    # the time (a PostgreSQL backend forked, statements prepared again each time).
    database_pool_size: int = Field(default=10, ge=1, description="ignored on SQLite")
    database_max_overflow: int = Field(default=0, ge=0, description="ignored on SQLite")
    mongodb_url: SecretStr | None = Field(
        default=None, description="MongoDB URL; default: a SecantusDB child process"
    )
    mongodb_database: str = "employeevirtual"
    mongodb_timeout_ms: int = Field(default=2000, ge=100)
    redis_url: str | None = None
    # per process, shared by the rate limits, the login throttle and the concurrent-turn
    # counter; the turn log's short commands have a pool of this size of their own, its
    # followers' blocking reads (XREAD BLOCK, one connection each while they wait) another
    redis_max_connections: int = Field(
        default=32,
        ge=1,
        description="Redis connections per process for the counters, and for the turn log's",
    )
    redis_max_blocking_reads: int = Field(
        default=64,
        ge=1,
        description="Redis connections per process for followers of another process's turn",
    )
    redis_pool_timeout_seconds: float = Field(
        default=30.0, gt=0, description="how long a command waits for a free Redis connection"
    )
