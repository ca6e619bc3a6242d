"""Strict parsing of the parameters the API reads by hand: page sizes, sequence numbers and
opaque cursors. Each refusal is a 422 that says what to send; nothing here can raise anything
else (``str.isdigit`` accepts ``²`` and ``①`` that ``int`` refuses, ``int`` refuses more than
4,300 digits, ``fromisoformat`` returns naive datetimes a timestamp column cannot compare)."""

from __future__ import annotations

import base64
import binascii
import re
from datetime import datetime
from uuid import UUID

from employeevirtual.errors import InvalidInput

__all__ = ["decode_cursor", "encode_cursor", "page_size", "parse_seq", "parse_time_cursor"]

_ASCII_DIGITS = re.compile(r"[0-9]{1,18}")  # fits a 64-bit column
_MAX_CURSOR = 512
_BAD_CURSOR = "cursor is not valid; pass next_cursor from a previous page"


def page_size(limit: int | None, default: int, maximum: int) -> int:
    if limit is None:
        return default
    if not 1 <= limit <= maximum:
        raise InvalidInput(f"limit must be between 1 and {maximum}")
    return limit


def parse_seq(value: str, *, name: str, hint: str) -> int:
    """A positive integer in plain ASCII digits (at most 18)."""
    if not _ASCII_DIGITS.fullmatch(value) or int(value) < 1:
        raise InvalidInput(f"{name} is not valid; {hint}")
    return int(value)


def encode_cursor(*parts: str) -> str:
    return base64.urlsafe_b64encode("|".join(parts).encode()).decode()


def decode_cursor(cursor: str, *, parts: int) -> list[str]:
    """The cursor's ``parts`` fields; 422 for anything else (no NUL, nothing over 512 bytes)."""
    if len(cursor) > _MAX_CURSOR:
        raise InvalidInput(_BAD_CURSOR)
    try:
        fields = base64.urlsafe_b64decode(cursor.encode("ascii")).decode().split("|")
    except (binascii.Error, ValueError, UnicodeError):
        raise InvalidInput(_BAD_CURSOR) from None
    if len(fields) != parts or any("\x00" in f or not f for f in fields):
        raise InvalidInput(_BAD_CURSOR)
    return fields


def parse_time_cursor(cursor: str) -> tuple[datetime, UUID]:
    """A (timezone-aware datetime, id) cursor, as ``encode_cursor(at.isoformat(), str(id))``."""
    at_text, id_text = decode_cursor(cursor, parts=2)
    try:
        at, item_id = datetime.fromisoformat(at_text), UUID(id_text)
    except ValueError:
        raise InvalidInput(_BAD_CURSOR) from None
    if at.tzinfo is None or at.utcoffset() is None:
        raise InvalidInput(_BAD_CURSOR)
    return at, item_id
