"""Building the knowledge parts from settings (the runtime's lifespan and the CLI)."""

from __future__ import annotations

import logging

from sqlalchemy.ext.asyncio import AsyncEngine

from employeevirtual.knowledge.embedding import make_embedder, wordllama_dimensions
from employeevirtual.knowledge.engine import EmbeddingMismatch
from employeevirtual.knowledge.files import FileStore
from employeevirtual.knowledge.ingestion import IngestionWorker
from employeevirtual.knowledge.lance import LanceEngine
from employeevirtual.knowledge.parser_pool import ParserPool
from employeevirtual.knowledge.parsing import Limits
from employeevirtual.knowledge.service import KnowledgeService
from employeevirtual.settings import Settings

__all__ = ["close_knowledge", "open_knowledge"]

log = logging.getLogger(__name__)


async def open_knowledge(settings: Settings, engine: AsyncEngine) -> KnowledgeService:
    """The service over an open engine. An index built with another embedding model leaves the
    service unavailable (503 with the fix) rather than mixing vectors; chat keeps working."""
    embedder = make_embedder(settings.embedding_model)
    dimensions = wordllama_dimensions(settings.embedding_model)
    if dimensions is None:  # ask the model once: providers differ, and some let you choose
        dimensions = len((await embedder.embed_query("dimensions")).embeddings[0])
    index = LanceEngine(
        settings.knowledge_index,
        embedding_model=settings.embedding_model,
        dimensions=dimensions,
        ann_min_rows=settings.knowledge_ann_min_rows,
        ann_ef=settings.knowledge_ann_ef,
        ann_refine=settings.knowledge_ann_refine,
    )
    limits = Limits(
        max_pages=settings.knowledge_max_pages,
        max_chars=settings.knowledge_max_chars,
        max_unzipped_bytes=settings.knowledge_max_unzipped_bytes,
    )
    files = FileStore(settings.knowledge_files)
    worker = IngestionWorker(
        engine=engine,
        index=index,
        embedder=embedder,
        embedding_model=settings.embedding_model,
        files=files,
        parser=ParserPool(
            limits=limits,
            max_tokens=settings.knowledge_chunk_tokens,
            overlap=min(settings.knowledge_chunk_overlap, settings.knowledge_chunk_tokens // 2),
            timeout_seconds=settings.knowledge_parse_timeout_seconds,
            memory_mb=settings.knowledge_parse_memory_mb,
        ),
        poll_seconds=settings.knowledge_poll_seconds,
        lease_seconds=settings.knowledge_lease_seconds,
        exit_after_batches=settings.fault_knowledge_exit_after_batches,
        warm_up=settings.knowledge_parser_warm_up,
    )
    service = KnowledgeService(
        engine=engine,
        index=index,
        embedder=embedder,
        files=files,
        worker=worker,
        limits=limits,
        max_bases_per_user=settings.knowledge_max_bases_per_user,
        max_documents_per_base=settings.knowledge_max_documents_per_base,
        max_file_bytes=settings.knowledge_max_file_bytes,
        search_results=settings.knowledge_search_results,
    )
    try:
        await index.open()
    except EmbeddingMismatch as exc:
        log.error("knowledge unavailable: %s", exc)
        service.unavailable = str(exc)
    return service


async def close_knowledge(service: KnowledgeService) -> None:
    await service.worker.stop()
    service.worker.parser.close()
    await service.index.close()
