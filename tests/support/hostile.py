"""The hostile-strings corpus (tests/data/hostile_strings.json) and the inputs of issue 8's
item 7, for the bad-input tests and the Schemathesis run."""

from __future__ import annotations

import base64
import json
from functools import cache
from pathlib import Path

CORPUS = Path(__file__).resolve().parents[1] / "data" / "hostile_strings.json"

# what no store can hold: refused with 422 wherever they appear
UNSTORABLE = ("\u0000", "a\u0000b", "\ud800", "a\udfffb", "\udbff\udbff", "\ud83d")

# raw JSON texts Python's parser accepts and JSON does not
NON_JSON_NUMBERS = ("NaN", "Infinity", "-Infinity")

# the `before` values and cursors that answered 500
BAD_BEFORE = ("²", "①", "٣", "１２", "7" * 5000, "-1", "0", " 1", "1.0", "0x10", "1e3", "+1")


def naive_cursor() -> str:
    """A cursor as the API encodes them, but holding a naive datetime."""
    return base64.urlsafe_b64encode(
        b"2026-01-01T00:00:00|00000000-0000-0000-0000-000000000001"
    ).decode()


BAD_CURSORS = (
    "x",
    "%%%",
    "²",
    "①",
    "A" * 5000,
    base64.urlsafe_b64encode(b"\x00|\x00").decode(),
    base64.urlsafe_b64encode(b"\xff\xfe").decode(),
    base64.urlsafe_b64encode(b"a|b|c").decode(),
    base64.urlsafe_b64encode(b"2026-01-01T00:00:00+00:00|not-a-uuid").decode(),
)


@cache
def hostile_strings() -> tuple[str, ...]:
    return tuple(json.loads(CORPUS.read_text(encoding="ascii"))["strings"])


def storable(value: str) -> bool:
    if "\x00" in value:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
