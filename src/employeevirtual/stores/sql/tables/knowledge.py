"""Knowledge bases and their documents (issue 12)."""

from __future__ import annotations

from sqlalchemy import Column, ForeignKey, Index, Integer, String, Table, Unicode, Uuid, text

from employeevirtual.stores.sql.tables.schema import metadata
from employeevirtual.stores.sql.types import UTCDateTime

__all__ = ["knowledge_bases", "knowledge_documents"]


# Knowledge (issue 12): bases of documents that agents search. The chunks and vectors live in
# the retrieval engine (knowledge/lance.py); these rows are the metadata and the work list.
knowledge_bases = Table(
    "knowledge_bases",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("user_id", Uuid, ForeignKey("empl.users.id"), nullable=False),
    Column("name", Unicode(200), nullable=False),
    Column("description", Unicode(2000), nullable=True),
    Column("visibility", String(20), nullable=False, server_default="private"),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=True),
    Index("IX_knowledge_bases_user_id", "user_id"),
)

knowledge_documents = Table(
    "knowledge_documents",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("base_id", Uuid, ForeignKey("empl.knowledge_bases.id"), nullable=False),
    Column("user_id", Uuid, ForeignKey("empl.users.id"), nullable=False),
    Column("title", Unicode(300), nullable=False),
    # shown back to the user only; the original is stored under ``storage_key`` (ours)
    Column("filename", Unicode(255), nullable=False),
    Column("kind", String(20), nullable=False),
    Column("content_type", String(100), nullable=False),
    Column("size_bytes", Integer, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("storage_key", String(100), nullable=False, unique=True),
    # queued -> processing -> ready | failed
    Column("status", String(20), nullable=False),
    Column("error", Unicode(2000), nullable=True),
    Column("pages", Integer, nullable=True),
    Column("chars", Integer, nullable=True),
    Column("chunks_total", Integer, nullable=False, server_default=text("0")),
    Column("chunks_done", Integer, nullable=False, server_default=text("0")),
    Column("embedding_model", String(200), nullable=True),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    # the ingestion worker's lease: whoever holds ``lease_token`` until ``locked_until``
    Column("lease_token", Uuid, nullable=True),
    Column("locked_until", UTCDateTime, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=True),
    Column("ready_at", UTCDateTime, nullable=True),
    Index("IX_knowledge_documents_base_id", "base_id"),
    Index("IX_knowledge_documents_status", "status"),
)
