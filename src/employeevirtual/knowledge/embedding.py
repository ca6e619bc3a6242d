"""Embeddings through Pydantic AI's ``Embedder``: any model string it knows
(``openai:text-embedding-3-small``, ``ollama:…``, ``sentence-transformers:…``), and the
embedded default, a 256-dimension WordLlama model shipped inside the ``wordllama`` wheel.

The default loads from the package directory with ``disable_download=True``: WordLlama's
plain ``load()`` looks for the tokenizer where the wheel does not put it and falls back to
downloading it; this call opens nothing but local files.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic_ai import Embedder, EmbeddingModel
from pydantic_ai.embeddings import EmbeddingResult, EmbeddingSettings
from pydantic_ai.embeddings.result import EmbedInputType

__all__ = [
    "DEFAULT_EMBEDDING_MODEL",
    "WordLlamaEmbeddingModel",
    "make_embedder",
    "wordllama_tokenizer",
]

DEFAULT_EMBEDDING_MODEL = "wordllama:l2_supercat-256"

_load_lock = threading.Lock()
_loaded: dict[int, Any] = {}


def _wordllama(dim: int) -> Any:
    """The model, loaded once per process (a 32000 x 256 matrix, ~0.15 s)."""
    with _load_lock:
        if dim not in _loaded:
            root = logging.getLogger()
            level, handlers = root.level, list(root.handlers)
            import wordllama  # runs logging.basicConfig(level=INFO) on import: undone below

            root.setLevel(level)
            root.handlers[:] = handlers
            _loaded[dim] = wordllama.WordLlama.load(
                config="l2_supercat",
                dim=dim,
                cache_dir=Path(wordllama.__file__).parent,
                disable_download=True,
            )
        return _loaded[dim]


class WordLlamaEmbeddingModel(EmbeddingModel):
    """WordLlama ``l2_supercat`` (256 dimensions) as a Pydantic AI embedding model.

    Embedding is synchronous CPU work (~40k short texts/s), run in a worker thread so the event
    loop never waits on it."""

    def __init__(self, *, dimensions: int = 256, settings: EmbeddingSettings | None = None):
        super().__init__(settings=settings)
        self._dimensions = dimensions
        self._wl = _wordllama(256)

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
        vectors = self._wl.embed(texts, norm=True)
        result: list[list[float]] = vectors[:, : self._dimensions].tolist()
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
        return len(self._wl.tokenizer.encode(text, add_special_tokens=False).ids)


def make_embedder(model: str) -> Embedder:
    """``wordllama:l2_supercat-256`` is the embedded default; anything else is handed to
    Pydantic AI's ``Embedder`` as a model string."""
    if model == DEFAULT_EMBEDDING_MODEL:
        return Embedder(WordLlamaEmbeddingModel())
    return Embedder(model)


def wordllama_tokenizer() -> Any:
    """The default model's tokenizer (Hugging Face ``tokenizers``): chunk sizes are counted
    in its tokens."""
    return _wordllama(256).tokenizer
