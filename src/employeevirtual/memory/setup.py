"""Building memory from settings (the runtime's lifespan)."""

from __future__ import annotations

from typing import Any

from pydantic_ai import Embedder
from pymongo.asynchronous.database import AsyncDatabase
from sqlalchemy.ext.asyncio import AsyncEngine

from employeevirtual.agents.models import ModelRegistry
from employeevirtual.memory.recall import Recall
from employeevirtual.memory.service import MemoryLimits, MemoryService
from employeevirtual.memory.summaries import Summarizer, SummaryWorker
from employeevirtual.settings import Settings
from employeevirtual.stores.mongo.memory import MemoryDocuments
from employeevirtual.sync.acks import SyncAcks
from employeevirtual.sync.memory import MemorySync

__all__ = ["open_memory"]


def open_memory(
    settings: Settings,
    engine: AsyncEngine,
    db: AsyncDatabase[dict[str, Any]],
    models: ModelRegistry,
    embedder: Embedder | None,
    acks: SyncAcks,
) -> MemoryService | None:
    """The service, or None when the operator turned memory off (``EV_MEMORY_ENABLED``)."""
    if not settings.memory_enabled:
        return None
    copies = MemoryDocuments(db)
    summarizer = Summarizer(
        models,
        model=settings.memory_summary_model,
        max_chars=settings.memory_summary_max_chars,
        timeout_seconds=settings.memory_summary_timeout_seconds,
        trace=settings.otel_enabled,
    )
    worker = SummaryWorker(
        engine,
        copies,
        acks,
        summarizer,
        window=settings.agent_context_messages,
        every=settings.memory_summary_every,
        batch=settings.memory_summary_batch,
        pass_messages=settings.memory_summary_pass_messages,
        keep=settings.memory_summary_versions,
        concurrency=settings.memory_summary_concurrency,
        retry_seconds=settings.memory_summary_retry_seconds,
    )
    return MemoryService(
        engine=engine,
        sync=MemorySync(engine, copies),
        worker=worker,
        recall=Recall(embedder),
        limits=MemoryLimits(
            per_scope=settings.memory_max_per_scope,
            chars=settings.memory_max_chars,
            recall=settings.memory_recall,
            calls_per_turn=settings.memory_saves_per_turn,
        ),
    )
