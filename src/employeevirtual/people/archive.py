"""The export's ZIP, written from a worker thread one entry at a time, so no entry is ever held
in memory whole: JSON Lines pages, Markdown chunks, files streamed 1 MiB at a time."""

from __future__ import annotations

import asyncio
import re
import shutil
import zipfile
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, Any

from pydantic_core import to_json

__all__ = ["ArchiveWriter", "original_name"]


def _line(record: dict[str, Any]) -> bytes:
    return to_json(record, serialize_unknown=True) + b"\n"


@dataclass
class _Zip:
    """The archive, touched only from a worker thread (one call at a time)."""

    path: Path
    counts: dict[str, int] = field(default_factory=dict)
    _zip: zipfile.ZipFile | None = None
    _entry: IO[bytes] | None = None

    def open(self) -> None:
        self._zip = zipfile.ZipFile(self.path, "w", compression=zipfile.ZIP_DEFLATED)

    def begin(self, name: str) -> None:
        assert self._zip is not None
        self.end()
        self._entry = self._zip.open(name, "w", force_zip64=True)

    def write(self, chunks: Iterable[bytes]) -> None:
        assert self._entry is not None
        for chunk in chunks:
            self._entry.write(chunk)

    def copy(self, name: str, source: Path) -> int:
        """Stream the file at ``source`` into a new entry, 1 MiB at a time; its size."""
        assert self._zip is not None
        self.end()
        with open(source, "rb") as src, self._zip.open(name, "w", force_zip64=True) as entry:
            shutil.copyfileobj(src, entry, 1024 * 1024)
            return src.tell()

    def end(self) -> None:
        if self._entry is not None:
            self._entry.close()
            self._entry = None

    def close(self) -> None:
        self.end()
        if self._zip is not None:
            self._zip.close()
            self._zip = None


class ArchiveWriter:
    def __init__(self, path: Path) -> None:
        self.zip = _Zip(path)

    async def __aenter__(self) -> ArchiveWriter:
        await asyncio.to_thread(self.zip.open)
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await asyncio.to_thread(self.zip.close)

    async def jsonl(self, name: str, pages: AsyncIterator[list[dict[str, Any]]]) -> int:
        await asyncio.to_thread(self.zip.begin, f"{name}.jsonl")
        count = 0
        async for page in pages:
            count += len(page)
            await asyncio.to_thread(self.zip.write, [_line(r) for r in page])
        await asyncio.to_thread(self.zip.end)
        self.zip.counts[name] = count
        return count

    async def text(self, name: str, chunks: AsyncIterator[str]) -> None:
        await asyncio.to_thread(self.zip.begin, name)
        async for chunk in chunks:
            await asyncio.to_thread(self.zip.write, [chunk.encode()])
        await asyncio.to_thread(self.zip.end)

    async def copy(self, name: str, source: Path) -> int:
        """The file at ``source`` as the entry ``name``; its size (``FileNotFoundError`` if
        it is gone)."""
        return await asyncio.to_thread(self.zip.copy, name, source)

    async def raw(self, name: str, data: bytes) -> None:
        await asyncio.to_thread(self.zip.begin, name)
        await asyncio.to_thread(self.zip.write, [data])
        await asyncio.to_thread(self.zip.end)


_UNSAFE = re.compile(r"[^\w.\- ]+")


def original_name(document: dict[str, Any]) -> str:
    """The ZIP entry of a knowledge document's original. The user's file name is kept readable
    but can never climb out of its folder (no separators, no ``..``, no control characters)."""
    name = _UNSAFE.sub("_", PurePosixPath(str(document["filename"]).replace("\\", "/")).name)
    name = name.strip(" .")[:120] or "original"
    return f"knowledge/{document['base_id']}/{document['id']}/{name}"
