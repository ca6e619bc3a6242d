"""Opaque page cursors: ``|``-joined fields in URL-safe base64. Reading one back is strict: any
cursor this API did not hand out is a 422 that says what to send (nothing over 512 bytes, no
NUL, and a time must carry its offset: a naive one cannot be compared with stored times)."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from datetime import datetime
from typing import Protocol, TypeVar
from uuid import UUID

from employeevirtual.errors import InvalidInput

__all__ = ["decode_cursor", "encode_cursor", "parse_time_cursor", "time_cursor", "time_page"]

_MAX_CURSOR = 512
_BAD_CURSOR = "cursor is not valid; pass next_cursor from a previous page"


def encode_cursor(*parts: str) -> str:
    return base64.urlsafe_b64encode("|".join(parts).encode()).decode()


def decode_cursor(cursor: str, *, parts: int) -> list[str]:
    """The cursor's ``parts`` fields; 422 for anything else."""
    if len(cursor) > _MAX_CURSOR:
        raise InvalidInput(_BAD_CURSOR)
    try:
        fields = base64.urlsafe_b64decode(cursor.encode("ascii")).decode().split("|")
    except (binascii.Error, ValueError, UnicodeError):
        raise InvalidInput(_BAD_CURSOR) from None
    if len(fields) != parts or any("\x00" in f or not f for f in fields):
        raise InvalidInput(_BAD_CURSOR)
    return fields


def time_cursor(at: datetime, item_id: UUID) -> str:
    """The cursor of a page that ends at (``at``, ``item_id``), for keyset paging."""
    return encode_cursor(at.isoformat(), str(item_id))


class _Timed(Protocol):
    @property
    def created_at(self) -> datetime: ...

    @property
    def id(self) -> UUID: ...


T = TypeVar("T", bound=_Timed)


def time_page(rows: Sequence[T], limit: int) -> tuple[list[T], str | None]:
    """A page read as ``limit + 1`` rows, keyset-paged on (created_at, id): its first ``limit``
    rows and the cursor of the next page (None: the last page)."""
    page = list(rows[:limit])
    if len(rows) <= limit or not page:
        return page, None
    return page, time_cursor(page[-1].created_at, page[-1].id)


def parse_time_cursor(cursor: str) -> tuple[datetime, UUID]:
    """A ``time_cursor`` read back: a timezone-aware datetime and an id."""
    at_text, id_text = decode_cursor(cursor, parts=2)
    try:
        at, item_id = datetime.fromisoformat(at_text), UUID(id_text)
    except ValueError:
        raise InvalidInput(_BAD_CURSOR) from None
    if at.tzinfo is None or at.utcoffset() is None:
        raise InvalidInput(_BAD_CURSOR)
    return at, item_id
