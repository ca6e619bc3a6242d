"""Everything a running server holds, opened and closed in one place (the app's lifespan)."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pymongo import AsyncMongoClient
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from employeevirtual.accounts.admin import AdminService
from employeevirtual.accounts.api_keys import ApiKeyService
from employeevirtual.accounts.service import AccountService
from employeevirtual.agents.models import ModelRegistry
from employeevirtual.agents.runner import AgentRunner
from employeevirtual.agents.service import AgentService
from employeevirtual.analytics.alerts import AlertSender
from employeevirtual.analytics.budgets import BudgetService
from employeevirtual.analytics.feedback import FeedbackService
from employeevirtual.analytics.rollups import RollupTask
from employeevirtual.analytics.service import AnalyticsService
from employeevirtual.chat.conversations import ConversationService
from employeevirtual.chat.idempotency import IdempotencyKeys
from employeevirtual.chat.interrupted import InterruptedTurns
from employeevirtual.chat.live import LiveTurns
from employeevirtual.chat.service import ChatService
from employeevirtual.health.instance import ServerInstance
from employeevirtual.knowledge.service import KnowledgeService
from employeevirtual.knowledge.setup import close_knowledge
from employeevirtual.mcp.service import McpService
from employeevirtual.memory.service import MemoryService
from employeevirtual.people.audit import AuditTrail
from employeevirtual.people.erasure import ErasureService
from employeevirtual.people.export import ExportService
from employeevirtual.people.registry import PersonalDataRegistry
from employeevirtual.people.retention import RetentionJob
from employeevirtual.people.search import SearchService
from employeevirtual.security.concurrency import ConcurrencyLimiter
from employeevirtual.security.ratelimit import RateLimiter
from employeevirtual.security.tokens import TokenService
from employeevirtual.settings import Settings
from employeevirtual.stores.datadir import DataDirLock
from employeevirtual.stores.mongo.breaker import CircuitBreaker
from employeevirtual.stores.mongo.documents import DocumentStore
from employeevirtual.stores.mongo.secantus import SecantusServer
from employeevirtual.stores.mongo.supervisor import SecantusSupervisor
from employeevirtual.streaming.log import TurnLog
from employeevirtual.sync.acks import SyncAcks
from employeevirtual.sync.reconcile import Reconciler
from employeevirtual.sync.relay import Relay

__all__ = ["Runtime"]

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
    redis: Redis | None = None
    """The client ``limiter`` and ``concurrency`` share (borrowed by both; closed here)."""

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
        if self.redis is not None:
            await self.redis.aclose()
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
