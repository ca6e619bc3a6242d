"""The embedded WordLlama model (``l2_supercat``, 256 dimensions, shipped inside the
``wordllama`` wheel), loaded once per process.

Kept apart from ``embedding`` (Pydantic AI's ``Embedder``) so that the knowledge parser's child
process, which only counts tokens, does not import Pydantic AI to start."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

__all__ = ["load_wordllama", "loaded_wordllama", "wordllama_tokenizer"]

_load_lock = threading.Lock()
_loaded: list[Any] = []


def load_wordllama() -> Any:
    """The model, loaded once per process (a 32000 x 256 matrix, ~0.15 s)."""
    with _load_lock:
        if not _loaded:
            root = logging.getLogger()
            level, handlers = root.level, list(root.handlers)
            import wordllama  # runs logging.basicConfig(level=INFO) on import: undone below

            root.setLevel(level)
            root.handlers[:] = handlers
            _loaded.append(
                wordllama.WordLlama.load(
                    config="l2_supercat",
                    dim=256,
                    cache_dir=Path(wordllama.__file__).parent,
                    disable_download=True,
                )
            )
        return _loaded[0]


def loaded_wordllama() -> Any | None:
    """The model if this process has loaded it already, else None (never loads)."""
    return _loaded[0] if _loaded else None


def wordllama_tokenizer() -> Any:
    """The default model's tokenizer (Hugging Face ``tokenizers``): chunk sizes are counted
    in its tokens."""
    return load_wordllama().tokenizer
