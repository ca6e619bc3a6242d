"""Everything a running server holds, opened and closed in one place (the app's lifespan)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import AsyncMongoClient
from sqlalchemy.ext.asyncio import AsyncEngine

from employeevirtual.accounts.admin import AdminService
from employeevirtual.accounts.api_keys import ApiKeyService
from employeevirtual.accounts.service import AccountService
from employeevirtual.agents.models import ModelRegistry
from employeevirtual.agents.runner import AgentRunner
from employeevirtual.agents.service import AgentRules, AgentService
from employeevirtual.analytics import metrics
from employeevirtual.analytics.alerts import AlertSender
from employeevirtual.analytics.budgets import BudgetService
from employeevirtual.analytics.feedback import FeedbackService
from employeevirtual.analytics.metrics import instrument_engine, instrument_redis, observe_mongo
from employeevirtual.analytics.rollups import Clock, Rollups, RollupTask
from employeevirtual.analytics.service import AnalyticsService
from employeevirtual.analytics.tracing import MongoSpans, enable_agent_tracing, trace_engine
from employeevirtual.chat.conversations import ConversationService
from employeevirtual.chat.idempotency import IdempotencyKeys
from employeevirtual.chat.interrupted import InterruptedTurns
from employeevirtual.chat.limits import TurnSlots
from employeevirtual.chat.live import LiveTurns
from employeevirtual.chat.running import AgentRuns
from employeevirtual.chat.service import ChatService
from employeevirtual.health.instance import ServerInstance
from employeevirtual.knowledge.service import KnowledgeService
from employeevirtual.knowledge.setup import close_knowledge, open_knowledge
from employeevirtual.mcp.service import McpService
from employeevirtual.mcp.setup import open_mcp
from employeevirtual.memory.service import MemoryService
from employeevirtual.memory.setup import open_memory
from employeevirtual.people.audit import AuditTrail
from employeevirtual.people.erasure import ErasureService
from employeevirtual.people.export import ExportService
from employeevirtual.people.knowledge import KnowledgeSource
from employeevirtual.people.memory import register_memory
from employeevirtual.people.registry import PersonalDataRegistry, default_registry
from employeevirtual.people.retention import RetentionJob, RetentionPolicy
from employeevirtual.people.search import SearchService
from employeevirtual.security.concurrency import ConcurrencyLimiter, make_concurrency_limiter
from employeevirtual.security.data_dir import secure_data_dir
from employeevirtual.security.login_throttle import LoginThrottle
from employeevirtual.security.password_policy import PasswordPolicy
from employeevirtual.security.ratelimit import RateLimiter, make_rate_limiter
from employeevirtual.security.tokens import TokenService
from employeevirtual.settings import Settings
from employeevirtual.stores.datadir import (
    DataDirLock,
    check_writable,
    preflight,
    sqlite_files,
    write_mongodb_url,
)
from employeevirtual.stores.mongo.breaker import CircuitBreaker
from employeevirtual.stores.mongo.client import connect
from employeevirtual.stores.mongo.collections import ensure_indexes
from employeevirtual.stores.mongo.documents import DocumentStore
from employeevirtual.stores.mongo.secantus import SecantusServer, start_embedded
from employeevirtual.stores.mongo.supervisor import SecantusSupervisor
from employeevirtual.stores.records import ConversationRecord
from employeevirtual.stores.sql.engine import create_engine
from employeevirtual.stores.sql.migrate import upgrade
from employeevirtual.streaming.log import TurnLog, make_turn_log
from employeevirtual.sync.acks import SyncAcks
from employeevirtual.sync.reconcile import Reconciler
from employeevirtual.sync.relay import Relay

__all__ = ["Runtime", "open_runtime", "preflight"]

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    settings: Settings
    engine: AsyncEngine
    mongo: AsyncMongoClient[dict[str, Any]]
    documents: DocumentStore
    models: ModelRegistry
    runner: AgentRunner
    acks: SyncAcks
    tokens: TokenService
    accounts: AccountService
    agents: AgentService
    conversations: ConversationService
    chat: ChatService
    limiter: RateLimiter
    concurrency: ConcurrencyLimiter
    api_keys: ApiKeyService
    admin: AdminService
    relay: Relay
    reconciler: Reconciler
    idempotency: IdempotencyKeys
    search: SearchService
    personal_data: PersonalDataRegistry
    erasure: ErasureService
    exports: ExportService
    retention: RetentionJob
    audit: AuditTrail
    instance: ServerInstance
    breaker: CircuitBreaker
    lock: DataDirLock | None
    knowledge: KnowledgeService
    analytics: AnalyticsService
    budgets: BudgetService
    feedback: FeedbackService
    alerts: AlertSender
    rollup_task: RollupTask
    turn_log: TurnLog
    live: LiveTurns
    mcp: McpService
    interrupted: InterruptedTurns
    secantus: SecantusServer | None = None
    supervisor: SecantusSupervisor | None = None
    memory: MemoryService | None = None

    def start_background(self) -> None:
        """The server's own background work: heartbeat, SecantusDB supervision, relay (with the
        lag alert), reconciler and loss check, key purge."""
        self.instance.start()
        if self.supervisor is not None:
            self.supervisor.start()
        self.interrupted.start()
        if not self.settings.background_jobs:  # an `employeevirtual worker` runs them
            return
        if self.settings.sync_relay_enabled:
            self.relay.start()
        self.reconciler.start()
        self.idempotency.start()
        self.erasure.start()
        self.exports.start()
        self.retention.start()
        if self.settings.knowledge_ingest_in_server and self.knowledge.unavailable is None:
            self.knowledge.worker.start()
        self.rollup_task.start()

    async def close(self) -> None:
        """After the HTTP server drained its in-flight requests (and the live turns finished or
        were cancelled and committed): record their MongoDB writes, let the relay copy what is
        still owed (bounded), say this instance stopped, and stop the embedded SecantusDB last,
        so nothing committed misses MongoDB for want of it."""
        # running turns finish (or are cancelled and committed) before the stores close
        await self.live.drain(self.settings.shutdown_grace_seconds)
        if self.memory is not None:  # summaries in progress: redone later, nothing is lost
            await self.memory.worker.stop()
        await self.turn_log.aclose()
        await self.erasure.stop()
        await self.exports.stop()
        await self.retention.stop()
        await close_knowledge(self.knowledge)
        await self.mcp.aclose()
        await self.relay.stop()
        await self.reconciler.stop()
        await self.idempotency.stop()
        await self.rollup_task.stop()
        await self.interrupted.stop()
        await self.acks.flush()
        await self._drain_relay()
        await self.alerts.drain()
        await self.acks.stop()
        await self.instance.stop()
        if self.supervisor is not None:
            await self.supervisor.stop()
        await self.limiter.aclose()
        await self.concurrency.aclose()
        await self.mongo.close()
        await self.engine.dispose()
        if self.secantus is not None:
            await self.secantus.stop()
        if self.lock is not None:
            self.lock.release()

    async def _drain_relay(self) -> None:
        limit = self.settings.shutdown_drain_seconds
        if not self.settings.sync_relay_enabled or limit <= 0 or self.breaker.is_open:
            return
        try:
            async with asyncio.timeout(limit):
                # every conversation, the busy ones too: nothing is in flight any more
                while (
                    await self.relay.run_once(now=datetime.now(UTC) + self.relay.grace)
                ).advanced:
                    pass
        except Exception as exc:  # the relay of the next start copies it instead
            log.warning("shutdown: relay did not finish copying (%s)", type(exc).__name__)


def _utc_now() -> datetime:
    return datetime.now(UTC)


async def open_runtime(
    settings: Settings,
    *,
    migrate: bool = True,
    after_turn_commit: Callable[[ConversationRecord], None] | None = None,
    clock: Clock = _utc_now,
) -> Runtime:
    """``after_turn_commit``: called after every turn's SQL commit, before MongoDB is written
    (the fault harness's crash-after-commit hook). ``clock``: what analytics and budgets take
    as now."""
    # before anything touches the data dir (migrations, SecantusDB files): writable, and ours
    check_writable(settings.data_dir, *sqlite_files(settings))
    lock: DataDirLock | None = None
    if settings.database_url is None or settings.mongodb_url is None:  # an embedded store
        lock = DataDirLock(settings.data_dir)
        lock.acquire()
    secure_data_dir(settings.data_dir)  # after the writability check: it names the path
    pool: dict[str, int] = {}
    if not settings.sql_url.startswith("sqlite"):
        pool = {
            "pool_size": settings.database_pool_size,
            "max_overflow": settings.database_max_overflow,
        }
    engine = create_engine(
        settings.sql_url, echo=settings.sql_echo, schema=settings.database_schema, **pool
    )
    metrics.ENABLED = settings.metrics_enabled
    listeners: list[Any] = []
    if settings.metrics_enabled:
        instrument_engine(engine)
    if settings.otel_enabled:
        enable_agent_tracing(include_content=settings.otel_include_content)
        trace_engine(engine)
        listeners.append(MongoSpans())
    secantus: SecantusServer | None = None
    breaker = CircuitBreaker(retry_seconds=settings.mongodb_breaker_seconds)
    try:
        if migrate:
            await upgrade(engine)
        if settings.mongodb_url is not None:
            mongo_url = settings.mongodb_url.get_secret_value()
        else:
            secantus = await start_embedded(settings.data_dir)
            mongo_url = secantus.url
            write_mongodb_url(settings.data_dir, mongo_url)
            log.info("started SecantusDB (MongoDB protocol) on port %d", secantus.port)
        mongo = connect(
            mongo_url,
            timeout_ms=settings.mongodb_timeout_ms,
            event_listeners=[*listeners, breaker],
        )
        db = mongo[settings.mongodb_database]
        documents = DocumentStore(db, window=settings.conversation_window, breaker=breaker)
        if settings.metrics_enabled:
            documents.observe = observe_mongo
        try:
            await ensure_indexes(db)
        except Exception as exc:
            log.error("MongoDB not reachable at start (%s); serving degraded", type(exc).__name__)
        knowledge = await open_knowledge(settings, engine)
    except BaseException:
        await engine.dispose()
        if secantus is not None:
            await secantus.stop()
        if lock is not None:
            lock.release()
        raise
    instance = ServerInstance(
        engine,
        heartbeat_seconds=settings.instance_heartbeat_seconds,
        dead_after=settings.instance_dead_seconds,
    )
    await instance.register()
    reconciler = Reconciler.from_settings(settings, engine, documents)
    supervisor: SecantusSupervisor | None = None
    if secantus is not None:
        owner = str(instance.id)

        async def probe() -> None:
            await documents.probe_write(owner)

        supervisor = SecantusSupervisor(
            secantus,
            probe=probe,
            interval=settings.secantus_probe_seconds,
            write_failures=settings.secantus_write_failures,
            on_restart=reconciler.request_check,
        )

    models = ModelRegistry(
        openai_base_url=settings.openai_base_url,
        openai_api_key=settings.openai_api_key.get_secret_value()
        if settings.openai_api_key
        else None,
        max_retries=settings.model_max_retries,
        offline_delay=settings.offline_stream_delay_ms / 1000,
        providers=frozenset(settings.model_providers) or None,
        models=frozenset(settings.allowed_models) or None,
    )
    runner = AgentRunner(
        models,
        timeout_seconds=settings.agent_timeout_seconds,
        max_output_tokens=settings.agent_max_output_tokens,
        max_total_tokens=settings.agent_max_total_tokens,
        tool_result_chars=settings.tool_result_max_chars,
    )
    acks = SyncAcks(engine)
    acks.start()
    rollups = Rollups(db, clock=clock, lookback_days=settings.analytics_rollup_lookback_days)
    analytics = AnalyticsService(db, rollups, max_days=settings.analytics_max_days)
    alerts = AlertSender(
        documents,
        webhook_url=settings.alert_webhook_url,
        allowed_hosts=settings.outbound_allowed_hosts,
        allow_private=settings.outbound_allow_private,
    )
    budgets = BudgetService(engine=engine, analytics=analytics, alerts=alerts, clock=clock)
    limiter = make_rate_limiter(settings.redis_url, key_prefix=settings.rate_limit_prefix)
    concurrency = make_concurrency_limiter(
        settings.redis_url,
        key_prefix=settings.rate_limit_prefix,
        ttl_seconds=settings.agent_timeout_seconds + 60,
    )
    for shared in (limiter, concurrency):  # the Redis-backed ones: time their commands
        client = getattr(shared, "_client", None)
        if client is not None and settings.metrics_enabled:
            instrument_redis(client)
    conversations = ConversationService(engine=engine, documents=documents)
    mcp = open_mcp(settings, engine)
    personal_data = default_registry(db)
    personal_data.register(KnowledgeSource(engine, knowledge))
    register_memory(personal_data, engine, db)
    exports = ExportService(
        engine=engine,
        registry=personal_data,
        export_dir=settings.export_dir,
        originals=knowledge.files,
        ttl=timedelta(hours=settings.export_ttl_hours),
        min_interval=timedelta(seconds=settings.export_min_interval_seconds),
    )
    idempotency = IdempotencyKeys(
        engine,
        lease_seconds=settings.idempotency_lease_seconds or settings.agent_timeout_seconds + 30,
        ttl_seconds=settings.idempotency_ttl_seconds,
        instance=instance,
    )
    memory = open_memory(settings, engine, db, models, knowledge.embedder)
    runs = AgentRuns(
        engine=engine,
        runner=runner,
        knowledge=knowledge,
        mcp=mcp,
        memory=memory,
        delegation_depth=settings.delegation_max_depth,
        handoffs_per_turn=settings.handoffs_per_turn,
    )
    chat = ChatService(
        engine=engine,
        documents=documents,
        runs=runs,
        acks=acks,
        keys=idempotency,
        slots=TurnSlots(concurrency, per_user=settings.max_concurrent_turns),
        context_messages=settings.agent_context_messages,
        max_message_chars=settings.max_message_chars,
        after_commit=after_turn_commit,
        budgets=budgets,
        memory=memory,
        max_conversations=settings.max_conversations_per_user,
    )
    turn_log = make_turn_log(
        settings.redis_url,
        prefix=settings.stream_key_prefix,
        max_events=settings.stream_max_events,
        max_turns=settings.stream_max_turns,
        retention_seconds=settings.stream_retention_seconds,
        running_seconds=settings.agent_timeout_seconds + settings.stream_retention_seconds,
    )
    return Runtime(
        settings=settings,
        engine=engine,
        mongo=mongo,
        documents=documents,
        models=models,
        runner=runner,
        acks=acks,
        tokens=TokenService(
            key=settings.signing_key,
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            lifetime=timedelta(minutes=settings.access_token_minutes),
        ),
        accounts=AccountService(
            engine=engine,
            documents=documents,
            allow_signup=settings.allow_signup,
            first_user_admin=settings.first_user_admin,
            password_policy=PasswordPolicy(min_length=settings.password_min_length),
            throttle=LoginThrottle(
                limiter,
                free_failures=settings.login_max_failures,
                window_seconds=settings.login_window_seconds,
                base_delay=settings.login_delay_base_seconds,
                max_delay=settings.login_delay_max_seconds,
                address_max_failures=settings.login_address_max_failures,
            ),
        ),
        agents=AgentService(
            engine=engine,
            rules=replace(AgentRules.from_settings(settings, models), external_tools=True),
            max_per_user=settings.max_agents_per_user,
            check_tools=mcp.check_agent_tools,
            max_delegates=settings.max_delegates_per_agent,
        ),
        conversations=conversations,
        knowledge=knowledge,
        chat=chat,
        relay=Relay.from_settings(settings, engine, documents),
        reconciler=reconciler,
        idempotency=idempotency,
        turn_log=turn_log,
        live=LiveTurns(chat, turn_log, heartbeat_seconds=settings.stream_heartbeat_seconds),
        mcp=mcp,
        interrupted=InterruptedTurns(
            engine,
            after_seconds=settings.agent_timeout_seconds + settings.interrupted_turn_grace_seconds,
            interval=settings.interrupted_turn_sweep_seconds,
        ),
        limiter=limiter,
        concurrency=concurrency,
        api_keys=ApiKeyService(
            engine=engine,
            max_per_user=settings.max_api_keys_per_user,
            touch_seconds=settings.api_key_touch_seconds,
        ),
        admin=AdminService(engine=engine),
        search=SearchService(engine=engine),
        personal_data=personal_data,
        erasure=ErasureService(
            engine=engine,
            conversations=conversations,
            registry=personal_data,
            limiter=limiter,
            export_dir=settings.export_dir,
            forget_conversation=chat.context.forget,
            forget_owner=[turn_log.forget_owner],
            lease_seconds=settings.erasure_lease_seconds,
            interval_seconds=settings.erasure_interval_seconds,
            crash_after_step=settings.fault_crash_erasure_after_step,
        ),
        exports=exports,
        retention=RetentionJob(
            engine=engine,
            db=db,
            conversations=conversations,
            exports=exports,
            policy=RetentionPolicy(
                user_activities_days=settings.retention_user_activities_days,
                system_logs_days=settings.retention_system_logs_days,
                chat_analytics_days=settings.retention_chat_analytics_days,
                audit_log_days=settings.retention_audit_log_days,
                archived_conversations_days=settings.retention_archived_conversations_days,
                inactive_conversations_days=settings.retention_inactive_conversations_days,
            ),
            rollups_complete_through=rollups.complete_through,
            rollup_lookback_days=settings.analytics_rollup_lookback_days,
            batch_size=settings.retention_batch_size,
            interval_seconds=settings.retention_interval_seconds,
        ),
        audit=AuditTrail(engine=engine),
        instance=instance,
        breaker=breaker,
        lock=lock,
        analytics=analytics,
        budgets=budgets,
        feedback=FeedbackService(engine=engine, documents=documents),
        alerts=alerts,
        rollup_task=RollupTask(rollups, interval=settings.analytics_rollup_seconds),
        secantus=secantus,
        supervisor=supervisor,
        memory=memory,
    )
