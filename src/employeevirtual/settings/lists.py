"""List settings given as one environment variable: a JSON list, or items separated."""

from __future__ import annotations

import json
from typing import Any

__all__ = ["split_list"]


def split_list(value: Any, separator: str) -> Any:
    """``value`` as a list when it is a string: JSON when it starts with ``[``, otherwise the
    non-empty items between ``separator``; anything else is left for pydantic to check."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            return json.loads(text)
        return [part.strip() for part in text.split(separator) if part.strip()]
    return value
