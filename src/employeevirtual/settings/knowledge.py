"""Knowledge bases (issue 12): the retrieval engine, embeddings, ingestion and its limits."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field

__all__ = ["KnowledgeSettings"]


class KnowledgeSettings(BaseModel):
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
    knowledge_parser_warm_up: bool = Field(
        default=True,
        description="start the parsing child process with the server (its imports and "
        "tokenizer, ~2 s of CPU), not at the first document; tests that ingest nothing skip it",
    )
    knowledge_poll_seconds: float = Field(default=1.0, gt=0)
    knowledge_lease_seconds: float = Field(default=300.0, gt=0)
    fault_knowledge_exit_after_batches: int = Field(
        default=0, ge=0, description="TEST ONLY: os._exit(137) after N ingestion batches"
    )
