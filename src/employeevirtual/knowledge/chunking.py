"""Chunks that follow the document's structure: Markdown headings, then paragraphs, then
sentences (``semantic-text-splitter``), sized in tokens of the embedding tokenizer with an
overlap. Each chunk keeps the path of headings above it, which lexical search also sees."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from typing import Any

__all__ = ["Chunk", "chunk_text"]

_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class Chunk:
    position: int
    heading: str  # "Policies > Refunds": the headings above the chunk
    text: str


@cache
def _tokenizer() -> Any:
    from employeevirtual.knowledge.wordllama import wordllama_tokenizer

    return wordllama_tokenizer()


@cache
def _splitter(max_tokens: int, overlap: int) -> Any:
    from semantic_text_splitter import MarkdownSplitter

    low = max(1, max_tokens // 2)
    return MarkdownSplitter.from_huggingface_tokenizer(
        _tokenizer(), (low, max_tokens), overlap=overlap
    )


def _heading_path(headings: list[tuple[int, int, str]], offset: int) -> str:
    path: list[tuple[int, str]] = []
    for start, level, title in headings:
        if start > offset:
            break
        path = [p for p in path if p[0] < level]
        path.append((level, title))
    return " > ".join(title for _, title in path)


def chunk_text(text: str, *, max_tokens: int, overlap: int) -> list[Chunk]:
    headings = [(m.start(), len(m.group(1)), m.group(2)) for m in _HEADING.finditer(text)]
    chunks: list[Chunk] = []
    for offset, piece in _splitter(max_tokens, overlap).chunk_indices(text):
        body = piece.strip()
        if not body:
            continue
        heading = _heading_path(headings, offset + len(piece) - len(piece.lstrip()))
        if _HEADING.fullmatch(body):
            continue  # a heading alone says nothing; it is in the next chunk's path
        chunks.append(Chunk(position=len(chunks), heading=heading, text=body))
    return chunks
