"""What an uploaded file must be before it is stored and queued: a known type (415), within
the size limit (413), not empty, and within the page and expansion limits (422). The service
checks the caller may write to the base between the cheap checks and the parse."""

from __future__ import annotations

import asyncio
import hashlib
import re
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any

from employeevirtual.errors import InvalidInput, ServiceError
from employeevirtual.knowledge.parsing import (
    DocumentRejected,
    Limits,
    UnsupportedType,
    inspect,
    kind_of,
)

__all__ = ["PayloadTooLarge", "UnsupportedMediaType", "Upload"]


class UnsupportedMediaType(ServiceError):
    status_code = 415


class PayloadTooLarge(ServiceError):
    status_code = 413


@dataclass(frozen=True, slots=True)
class Upload:
    filename: str
    data: bytes = field(repr=False)
    title: str | None
    kind: str
    content_type: str

    @classmethod
    def accept(cls, filename: str, data: bytes, *, title: str | None, max_bytes: int) -> Upload:
        """The checks that need no parse: type, size, emptiness."""
        try:
            kind, content_type = kind_of(filename)
        except UnsupportedType as exc:
            raise UnsupportedMediaType(str(exc)) from None
        if len(data) > max_bytes:
            raise PayloadTooLarge(
                f"the file is {len(data):,} bytes; the limit is {max_bytes:,} "
                "(EV_KNOWLEDGE_MAX_FILE_BYTES)"
            )
        if not data:
            raise InvalidInput("the file is empty")
        return cls(filename, data, title, kind, content_type)

    async def pages(self, limits: Limits) -> int | None:
        """The parse's checks (pages, zip bombs), off the event loop; the page count."""
        try:
            return await asyncio.to_thread(inspect, self.kind, self.data, limits)
        except DocumentRejected as exc:
            raise InvalidInput(str(exc)) from None

    def columns(self) -> dict[str, Any]:
        """The document row's columns that come from the file."""
        return {
            "title": (self.title or "").strip()[:300] or _title_from(self.filename),
            "filename": _safe_filename(self.filename),
            "kind": self.kind,
            "content_type": self.content_type,
            "size_bytes": len(self.data),
            "sha256": hashlib.sha256(self.data).hexdigest(),
        }


def _title_from(filename: str) -> str:
    stem = PurePath(filename.replace("\\", "/")).stem
    return re.sub(r"[_\s]+", " ", stem).strip()[:300] or "untitled"


def _safe_filename(filename: str) -> str:
    name = PurePath(filename.replace("\\", "/")).name
    return re.sub(r"[\x00-\x1f\x7f\"]", "", name)[:255] or "file"
