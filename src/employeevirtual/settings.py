"""All configuration, read from ``EV_*`` environment variables or a ``.env`` file."""

from __future__ import annotations

import ipaddress
import json
import secrets
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

__all__ = ["Settings"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="EV_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    # where the embedded default keeps everything (SQLite file, SecantusDB files, secret key)
    data_dir: Path = Path("./data")

    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy async URL; default: SQLite file in the data directory",
    )
    database_schema: str = Field(
        default="empl", pattern=r"^[a-z_][a-z0-9_]{0,62}$", description="ignored on SQLite"
    )
    sql_echo: bool = False
    # per process: the sum over every API process and worker must stay under the database's
    # connection limit (docs/deploy.md)
    database_pool_size: int = Field(default=20, ge=1, description="ignored on SQLite")
    database_max_overflow: int = Field(default=20, ge=0, description="ignored on SQLite")
    mongodb_url: SecretStr | None = Field(
        default=None, description="MongoDB URL; default: a SecantusDB child process"
    )
    mongodb_database: str = "employeevirtual"
    mongodb_timeout_ms: int = Field(default=2000, ge=100)
    redis_url: str | None = None

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

    default_model: str = "offline"
    model_providers: Annotated[list[str], NoDecode] = Field(
        default=[],
        description="providers users may name (comma-separated, e.g. offline,openai-chat,"
        "anthropic); empty: offline plus OpenAI when a key or base URL is set",
    )
    allowed_models: Annotated[list[str], NoDecode] = Field(
        default=[], description="if set, the only model names users may give (offline always)"
    )
    openai_base_url: str | None = Field(
        default=None,
        description="Base URL of an OpenAI-compatible server (Ollama, vLLM, LM Studio)",
    )
    openai_api_key: SecretStr | None = None
    model_max_retries: int = Field(default=2, ge=0, le=10, description="provider SDK retries")
    agent_timeout_seconds: float = Field(default=60.0, gt=0)
    agent_context_messages: int = Field(default=20, ge=0, le=200)
    agent_max_output_tokens: int | None = Field(default=None, ge=1)
    agent_max_total_tokens: int | None = Field(
        default=200_000, ge=1, description="input + output tokens one agent run may use"
    )

    # live turns (streaming): the offline model's pace, the turn event log's bounds
    offline_stream_delay_ms: int = Field(
        default=40, ge=0, le=5000, description="pause between the offline model's words"
    )
    stream_retention_seconds: float = Field(
        default=600.0, gt=0, description="a finished turn's events are kept this long"
    )
    stream_max_events: int = Field(default=10_000, ge=16, description="events kept per turn")
    stream_max_turns: int = Field(
        default=10_000, ge=1, description="turns kept in process (without Redis)"
    )
    stream_heartbeat_seconds: float = Field(default=15.0, gt=0, le=15.0)
    stream_key_prefix: str = Field(default="ev:turn:", description="Redis key prefix")
    interrupted_turn_sweep_seconds: float = Field(
        default=60.0, ge=0, description="look for turns a dead process left unanswered; 0: never"
    )
    interrupted_turn_grace_seconds: float = Field(
        default=300.0,
        gt=0,
        description="an unanswered user message older than the agent timeout plus this is "
        "an interrupted turn (its failure is recorded)",
    )
    tool_result_max_chars: int = Field(
        default=2000, ge=16, description="a tool result is cut here, in events and stored"
    )
    shutdown_grace_seconds: float = Field(
        default=30.0, ge=0, description="running turns may finish this long at shutdown"
    )

    max_message_chars: int = Field(default=32_000, ge=1)
    max_instructions_chars: int = Field(default=20_000, ge=1)
    max_tools_per_agent: int = Field(default=16, ge=0)
    # teams of agents (issue 13)
    max_delegates_per_agent: int = Field(default=8, ge=0, le=32)
    delegation_max_depth: int = Field(
        default=3, ge=1, le=8, description="how deep delegates may ask delegates in one turn"
    )
    handoffs_per_turn: int = Field(
        default=2, ge=0, le=8, description="how many times agents may hand a turn over"
    )
    conversation_window: int = Field(
        default=50, ge=1, le=1000, description="messages kept in the MongoDB conversation doc"
    )
    page_limit_default: int = Field(default=20, ge=1)
    page_limit_max: int = Field(default=100, ge=1)
    history_limit_default: int = Field(default=50, ge=1)
    history_limit_max: int = Field(default=200, ge=1)

    # -- access control and resource limits (issue 5) --
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

    background_jobs: bool = Field(
        default=True,
        description="run the shared background jobs (relay, reconciler, key purge, exports, "
        "erasure, retention, ingestion, rollups) in this server; false on API processes when "
        "an `employeevirtual worker` runs them",
    )

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

    # -- the HTTP server and what sits in front of it (issue 8) --
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

    # knowledge bases (issue 12): the retrieval engine, embeddings, ingestion and its limits
    knowledge_index_uri: str | None = Field(
        default=None,
        description="LanceDB URI shared by every API process and worker (a directory or "
        "s3://…); default: knowledge/index in the data dir",
    )
    knowledge_files_dir: Path | None = Field(
        default=None, description="originals, by generated key; default: data dir/knowledge/files"
    )
    embedding_model: str = Field(
        default="wordllama:l2_supercat-256",
        description="a Pydantic AI embedding model string; the default is embedded (no key)",
    )
    knowledge_chunk_tokens: int = Field(default=200, ge=16, le=8192)
    knowledge_chunk_overlap: int = Field(default=30, ge=0, le=1024)
    knowledge_search_results: int = Field(default=5, ge=1, le=50)
    knowledge_ann_min_rows: int = Field(
        default=20_000, ge=256, description="build the ANN index once the index holds this many"
    )
    knowledge_ann_ef: int = Field(default=800, ge=10, description="HNSW candidates per query")
    knowledge_ann_refine: int = Field(
        default=40, ge=1, description="re-rank this many times the results by exact distance"
    )
    knowledge_max_bases_per_user: int = Field(default=50, ge=1)
    knowledge_max_bases_per_agent: int = Field(default=10, ge=0)
    knowledge_max_documents_per_base: int = Field(default=500, ge=1)
    knowledge_max_file_bytes: int = Field(default=20 * 1024 * 1024, ge=1024)
    knowledge_max_pages: int = Field(default=1000, ge=1)
    knowledge_max_chars: int = Field(default=2_000_000, ge=1000)
    knowledge_max_unzipped_bytes: int = Field(default=100 * 1024 * 1024, ge=1024)
    knowledge_parse_timeout_seconds: float = Field(default=120.0, gt=0)
    knowledge_parse_memory_mb: int = Field(
        default=1024, ge=128, description="address-space limit of the parsing child process"
    )
    knowledge_ingest_in_server: bool = Field(
        default=True, description="run ingestion in the server (or only `knowledge worker`)"
    )
    knowledge_poll_seconds: float = Field(default=1.0, gt=0)
    knowledge_lease_seconds: float = Field(default=300.0, gt=0)
    fault_knowledge_exit_after_batches: int = Field(
        default=0, ge=0, description="TEST ONLY: os._exit(137) after N ingestion batches"
    )
    # usage analytics, budgets, metrics (issue 14)
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

    # -- people's data (issue 15): export, erasure, retention --
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

    # -- memory (issue 18): conversation summaries, memories about the person --
    memory_enabled: bool = Field(
        default=True, description="memory for agents whose own setting allows it; false: none"
    )
    memory_summary_model: str | None = Field(
        default=None,
        description="model that writes conversation summaries; default: the agent's own model "
        "('offline' makes a deterministic extractive summary)",
    )
    memory_summary_max_chars: int = Field(
        default=2000, ge=200, le=20_000, description="a summary is never longer than this"
    )
    memory_summary_every: int = Field(
        default=10, ge=1, description="summarize once this many messages left the window"
    )
    memory_summary_batch: int = Field(
        default=100, ge=2, le=1000, description="messages folded into a summary per model call"
    )
    memory_summary_pass_messages: int = Field(
        default=500,
        ge=16,
        le=100_000,
        description="messages one background summary pass reads at most; a longer catch-up "
        "goes on in later passes",
    )
    memory_summary_timeout_seconds: float = Field(default=60.0, gt=0)
    memory_summary_concurrency: int = Field(
        default=2, ge=1, le=64, description="summaries written at once by this process"
    )
    memory_summary_retry_seconds: float = Field(
        default=60.0, ge=0, description="after a failed summary, wait this long for that one"
    )
    memory_summary_versions: int = Field(
        default=5, ge=1, le=100, description="summary versions kept per conversation"
    )
    memory_max_per_scope: int = Field(
        default=100, ge=1, le=1000, description="memories per person and agent (or conversation)"
    )
    memory_max_chars: int = Field(default=500, ge=16, le=1000, description="one memory's size")
    memory_recall: int = Field(
        default=8, ge=1, le=100, description="memories given to the model at a turn's start"
    )
    memory_saves_per_turn: int = Field(
        default=5, ge=1, le=32, description="remember/forget calls one turn may make"
    )

    # tools from MCP servers (issue 13): secrets at rest, outbound rules, bounds on every call
    secrets_key: SecretStr | None = Field(
        default=None,
        description="Fernet key(s), comma-separated, newest first, that encrypt MCP server "
        "secrets at rest; unset: servers with secrets cannot be registered or used",
    )
    mcp_allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default=[],
        description="host or host:port entries an MCP server URL may name (comma-separated); "
        "empty: no HTTP MCP server may be registered",
    )
    mcp_allow_private: bool = Field(
        default=False, description="let MCP URLs reach loopback/private/link-local addresses"
    )
    mcp_stdio_commands: Annotated[list[str], NoDecode] = Field(
        default=[],
        description="the exact command lines (JSON list or ';'-separated) an admin may "
        "register as a stdio MCP server; empty: no stdio server",
    )
    mcp_call_timeout_seconds: float = Field(
        default=30.0, gt=0, le=600, description="one MCP tool call, connection included"
    )
    mcp_connect_timeout_seconds: float = Field(
        default=5.0, gt=0, le=60, description="an MCP server's connection and handshake"
    )
    mcp_start_timeout_seconds: float = Field(
        default=30.0, gt=0, le=600, description="a stdio server's child starting and answering"
    )
    mcp_max_calls_per_turn: int = Field(default=8, ge=1, le=100)
    mcp_result_max_chars: int = Field(
        default=16_000, ge=256, description="an MCP result is cut here before the model sees it"
    )
    mcp_max_servers: int = Field(default=50, ge=1)
    mcp_max_tools_per_server: int = Field(default=200, ge=1)
    mcp_catalog_seconds: float = Field(
        default=5.0, ge=0, description="how long a process keeps the server list it read"
    )

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @field_validator("data_dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @field_validator("model_providers")
    @classmethod
    def _no_test_model(cls, value: list[str]) -> list[str]:
        if "test" in value:
            raise ValueError("EV_MODEL_PROVIDERS: 'test' is for the test suite only")
        return value

    @field_validator(
        "forwarded_allow_ips",
        "model_providers",
        "allowed_models",
        "mcp_allowed_hosts",
        mode="before",
    )
    @classmethod
    def _split_hosts(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [part.strip() for part in text.split(",") if part.strip()]
        return value

    @field_validator("mcp_stdio_commands", mode="before")
    @classmethod
    def _split_commands(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [part.strip() for part in text.split(";") if part.strip()]
        return value

    @field_validator("forwarded_allow_ips")
    @classmethod
    def _valid_hosts(cls, value: list[str]) -> list[str]:
        for entry in value:
            if entry != "*":
                try:
                    ipaddress.ip_network(entry, strict=False)
                except ValueError:
                    raise ValueError(
                        f"EV_FORWARDED_ALLOW_IPS: {entry!r} is not an IP address or network"
                    ) from None
        return value

    @model_validator(mode="after")
    def _no_wildcard_with_credentials(self) -> Settings:
        if self.cors_allow_credentials and "*" in self.cors_origins:
            raise ValueError(
                "EV_CORS_ORIGINS='*' cannot be combined with EV_CORS_ALLOW_CREDENTIALS=true; "
                "list the allowed origins explicitly"
            )
        return self

    @property
    def export_dir(self) -> Path:
        return self.data_dir / "exports"

    @property
    def knowledge_index(self) -> str:
        return self.knowledge_index_uri or str(self.data_dir / "knowledge" / "index")

    @property
    def knowledge_files(self) -> Path:
        return self.knowledge_files_dir or self.data_dir / "knowledge" / "files"

    @property
    def sql_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{self.data_dir / 'employeevirtual.db'}"

    @cached_property
    def signing_key(self) -> str:
        """The configured secret, or one generated once and kept in the data directory."""
        if self.secret_key is not None:
            return self.secret_key.get_secret_value()
        path = self.data_dir / "secret_key"
        if path.exists():
            return path.read_text().strip()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        key = secrets.token_urlsafe(48)
        path.touch(mode=0o600)
        path.write_text(key)
        return key
