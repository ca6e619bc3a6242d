"""Strict parsing of the parameters the API reads by hand: page sizes, sequence numbers and
opaque cursors (from ``employeevirtual.cursors``). Each refusal is a 422 that says what to send;
nothing here can raise anything else (``str.isdigit`` accepts ``²`` and ``①`` that ``int``
refuses, ``int`` refuses more than 4,300 digits)."""

from __future__ import annotations

import re

from employeevirtual.cursors import decode_cursor, encode_cursor, parse_time_cursor
from employeevirtual.errors import InvalidInput

__all__ = ["decode_cursor", "encode_cursor", "page_size", "parse_seq", "parse_time_cursor"]

_ASCII_DIGITS = re.compile(r"[0-9]{1,18}")  # fits a 64-bit column


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
