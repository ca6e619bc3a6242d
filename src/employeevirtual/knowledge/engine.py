"""The retrieval engine's small interface: what the rest of the product needs from any engine.

One engine holds every chunk of every base. Access is part of each query: a search names the
bases the caller may read and the engine filters on them inside the query, never afterwards.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol
from uuid import UUID

__all__ = [
    "ChunkRow",
    "EmbeddingMismatch",
    "Hit",
    "RetrievalEngine",
    "SearchMode",
]

SearchMode = Literal["hybrid", "lexical", "vector"]


class EmbeddingMismatch(RuntimeError):
    """The index holds vectors of another embedding model than the one configured."""


@dataclass(frozen=True, slots=True)
class ChunkRow:
    chunk_id: str  # "<document id>:<position>": the same chunk always has the same id
    document_id: UUID
    base_id: UUID
    owner_id: UUID
    position: int
    title: str
    heading: str
    text: str  # the passage, as quoted to users
    vector: Sequence[float]

    @property
    def search_text(self) -> str:
        """What lexical search sees: the passage with its document title and headings."""
        return "\n".join(part for part in (self.title, self.heading, self.text) if part)


@dataclass(frozen=True, slots=True)
class Hit:
    chunk_id: str
    document_id: UUID
    base_id: UUID
    position: int
    title: str
    heading: str
    text: str
    score: float


class RetrievalEngine(Protocol):
    """An engine that runs embedded (``make run``) and shared by several API processes."""

    embedding_model: str

    async def open(self) -> None:
        """Create or open the index; raise EmbeddingMismatch if it holds another model's
        vectors."""

    async def upsert(self, rows: Sequence[ChunkRow]) -> None:
        """Write chunks; a chunk id already there is replaced, never duplicated."""

    async def delete_document(self, document_id: UUID) -> None:
        """Remove a document's chunks; later searches never see them."""

    async def delete_base(self, base_id: UUID) -> None: ...

    async def purge_deleted(self) -> None:
        """Rewrite storage so deleted chunks are gone from disk, not only hidden (erasure)."""
        ...

    async def search(
        self,
        *,
        text: str,
        vector: Sequence[float] | None,
        base_ids: Sequence[UUID],
        limit: int,
        mode: SearchMode = "hybrid",
        exact: bool = False,
    ) -> list[Hit]:
        """The best chunks of the named bases only (the filter is inside the query).
        ``exact`` bypasses the ANN index (brute force), to measure it."""

    async def count(self, *, document_id: UUID | None = None) -> int: ...

    async def chunk_ids(self, document_id: UUID) -> list[str]: ...

    async def optimize(self) -> None:
        """Fold new rows into the indexes (and build the ANN index once there are enough)."""

    async def reset(self, embedding_model: str) -> None:
        """Drop every chunk and start an index for ``embedding_model`` (re-indexing)."""

    async def close(self) -> None: ...
