"""``open_runtime``: a server's stores opened (``runtime.stores``), then every service built on
them, in the order they depend on each other."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from employeevirtual.accounts.admin import AdminService
from employeevirtual.accounts.api_keys import ApiKeyService
from employeevirtual.accounts.service import AccountService
from employeevirtual.agents.models import ModelRegistry
from employeevirtual.agents.runner import AgentRunner
from employeevirtual.agents.service import AgentRules, AgentService
from employeevirtual.analytics.alerts import AlertSender
from employeevirtual.analytics.budgets import BudgetService
from employeevirtual.analytics.feedback import FeedbackService
from employeevirtual.analytics.metrics import instrument_redis
from employeevirtual.analytics.rollups import Clock, Rollups, RollupTask
from employeevirtual.analytics.service import AnalyticsService
from employeevirtual.chat.conversations import ConversationService
from employeevirtual.chat.idempotency import IdempotencyKeys
from employeevirtual.chat.interrupted import InterruptedTurns
from employeevirtual.chat.limits import TurnSlots
from employeevirtual.chat.live import LiveTurns
from employeevirtual.chat.running import AgentRuns
from employeevirtual.chat.service import ChatService
from employeevirtual.health.instance import ServerInstance
from employeevirtual.mcp.setup import open_mcp
from employeevirtual.memory.setup import open_memory
from employeevirtual.people.audit import AuditTrail
from employeevirtual.people.erasure import ErasureService
from employeevirtual.people.export import ExportService
from employeevirtual.people.knowledge import KnowledgeSource
from employeevirtual.people.memory import register_memory
from employeevirtual.people.registry import default_registry
from employeevirtual.people.retention import RetentionJob, RetentionPolicy
from employeevirtual.people.search import SearchService
from employeevirtual.runtime import Runtime
from employeevirtual.runtime.stores import open_stores
from employeevirtual.security.concurrency import make_concurrency_limiter
from employeevirtual.security.login_throttle import LoginThrottle
from employeevirtual.security.password_policy import PasswordPolicy
from employeevirtual.security.ratelimit import make_rate_limiter
from employeevirtual.security.tokens import TokenService
from employeevirtual.settings import Settings
from employeevirtual.stores.mongo.supervisor import SecantusSupervisor
from employeevirtual.stores.records import ConversationRecord
from employeevirtual.stores.redis_pool import open_redis
from employeevirtual.streaming.log import make_turn_log
from employeevirtual.sync.acks import SyncAcks
from employeevirtual.sync.reconcile import Reconciler
from employeevirtual.sync.relay import Relay

__all__ = ["open_runtime"]


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
    stores = await open_stores(settings, migrate=migrate)
    engine, documents, db, knowledge = stores.engine, stores.documents, stores.db, stores.knowledge
    secantus = stores.secantus
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
    acks = SyncAcks(engine, documents, interval=settings.sync_ack_seconds)
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
    # one client on one bounded pool for every counter of this process (None without Redis)
    redis = (
        open_redis(
            settings.redis_url,
            max_connections=settings.redis_max_connections,
            timeout=settings.redis_pool_timeout_seconds,
        )
        if settings.redis_url
        else None
    )
    if redis is not None and settings.metrics_enabled:  # time its commands
        instrument_redis(redis)
    limiter = make_rate_limiter(redis, key_prefix=settings.rate_limit_prefix)
    concurrency = make_concurrency_limiter(
        redis,
        key_prefix=settings.rate_limit_prefix,
        ttl_seconds=settings.agent_timeout_seconds + 60,
    )
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
    memory = open_memory(settings, engine, db, models, knowledge.embedder, acks)
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
        max_connections=settings.redis_max_connections,
        max_readers=settings.redis_max_blocking_reads,
        pool_timeout=settings.redis_pool_timeout_seconds,
    )
    return Runtime(
        settings=settings,
        engine=engine,
        mongo=stores.mongo,
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
        live=LiveTurns(
            chat,
            turn_log,
            heartbeat_seconds=settings.stream_heartbeat_seconds,
            frame_seconds=settings.stream_frame_ms / 1000,
        ),
        mcp=mcp,
        interrupted=InterruptedTurns(
            engine,
            after_seconds=settings.agent_timeout_seconds + settings.interrupted_turn_grace_seconds,
            interval=settings.interrupted_turn_sweep_seconds,
        ),
        limiter=limiter,
        concurrency=concurrency,
        redis=redis,
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
            flush_documents=acks.flush,
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
        breaker=stores.breaker,
        lock=stores.lock,
        analytics=analytics,
        budgets=budgets,
        feedback=FeedbackService(engine=engine, documents=documents),
        alerts=alerts,
        rollup_task=RollupTask(rollups, interval=settings.analytics_rollup_seconds),
        secantus=secantus,
        supervisor=supervisor,
        memory=memory,
    )
