"""Embeddings through Pydantic AI's ``Embedder``: any model string it knows
(``openai:text-embedding-3-small``, ``ollama:…``, ``sentence-transformers:…``), and the
embedded default, a 256-dimension WordLlama model shipped inside the ``wordllama`` wheel.

The default loads from the package directory with ``disable_download=True``: WordLlama's
plain ``load()`` looks for the tokenizer where the wheel does not put it and falls back to
downloading it; this call opens nothing but local files.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from pydantic_ai import Embedder, EmbeddingModel
from pydantic_ai.embeddings import EmbeddingResult, EmbeddingSettings
from pydantic_ai.embeddings.result import EmbedInputType

from employeevirtual.knowledge.wordllama import (
    load_wordllama,
    loaded_wordllama,
    wordllama_tokenizer,
)

__all__ = [
    "DEFAULT_EMBEDDING_MODEL",
    "WordLlamaEmbeddingModel",
    "make_embedder",
    "wordllama_dimensions",
    "wordllama_tokenizer",
]

DEFAULT_EMBEDDING_MODEL = "wordllama:l2_supercat-256"
_WORDLLAMA = "wordllama:l2_supercat-"
# the wheel ships the 256-dimension weights; WordLlama's Matryoshka training makes their first
# 64 or 128 dimensions a smaller model of their own
WORDLLAMA_DIMENSIONS = (64, 128, 256)


class WordLlamaEmbeddingModel(EmbeddingModel):
    """WordLlama ``l2_supercat`` (256 dimensions) as a Pydantic AI embedding model.

    Embedding is synchronous CPU work (~40k short texts/s), run in a worker thread so the event
    loop never waits on it. The weights load on first use, in that thread: a server that never
    embeds (no knowledge base, memories that fit the turn) never pays the ≈ 1 s of import and
    load, and its start-up does not wait for them."""

    def __init__(self, *, dimensions: int = 256, settings: EmbeddingSettings | None = None):
        super().__init__(settings=settings)
        self._dimensions = dimensions

    @property
    def _wl(self) -> Any:
        return load_wordllama()

    @property
    def model_name(self) -> str:
        return f"l2_supercat-{self._dimensions}"

    @property
    def system(self) -> str:
        return "wordllama"

    @property
    def dimensions(self) -> int:
        return self._dimensions

    def embed_now(self, texts: list[str]) -> list[list[float]]:
        import numpy as np

        vectors = self._wl.embed(texts, norm=True)[:, : self._dimensions]
        if self._dimensions < vectors.shape[1] or self._dimensions < 256:
            norms = np.linalg.norm(vectors, axis=1, keepdims=True)
            vectors = vectors / np.where(norms == 0, 1, norms)
        result: list[list[float]] = vectors.tolist()
        return result

    async def embed(
        self,
        inputs: str | Sequence[str],
        *,
        input_type: EmbedInputType,
        settings: EmbeddingSettings | None = None,
    ) -> EmbeddingResult:
        texts, _ = self.prepare_embed(inputs, settings)
        vectors = await asyncio.to_thread(self.embed_now, texts) if texts else []
        return EmbeddingResult(
            vectors,
            inputs=texts,
            input_type=input_type,
            model_name=self.model_name,
            provider_name=self.system,
        )

    async def max_input_tokens(self) -> int | None:
        return None

    async def count_tokens(self, text: str) -> int:
        wl: Any = loaded_wordllama()
        if wl is None:
            wl = await asyncio.to_thread(load_wordllama)
        return len(wl.tokenizer.encode(text, add_special_tokens=False).ids)


def wordllama_dimensions(model: str) -> int | None:
    """64, 128 or 256 for an embedded WordLlama model string, None for any other model."""
    if model.startswith(_WORDLLAMA) and model[len(_WORDLLAMA) :].isdigit():
        dimensions = int(model[len(_WORDLLAMA) :])
        if dimensions in WORDLLAMA_DIMENSIONS:
            return dimensions
    return None


def make_embedder(model: str) -> Embedder:
    """``wordllama:l2_supercat-256`` (the default; also ``-128``, ``-64``) is embedded; anything
    else is handed to Pydantic AI's ``Embedder`` as a model string."""
    dimensions = wordllama_dimensions(model)
    if dimensions is not None:
        return Embedder(WordLlamaEmbeddingModel(dimensions=dimensions))
    return Embedder(model)
