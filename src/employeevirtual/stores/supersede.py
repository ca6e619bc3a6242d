"""Regenerated and edited answers: append-only, the replaced messages kept but not current.

A new message lists the ids it replaces in ``metadata.supersedes`` (a regenerated answer the
answer before it; an edited user message the original, and its new answer the original's
answers). Nothing already stored is rewritten, so turns stay O(1) and the relay copies new
messages only. A replaced message sits just before the one replacing it, so a page of history
resolves it from the few messages that follow the page (``LOOKAHEAD``).
"""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from employeevirtual.stores.records import MessageRecord

__all__ = ["LOOKAHEAD", "current", "superseded_ids"]

LOOKAHEAD = 8


def superseded_ids(messages: Sequence[MessageRecord]) -> set[UUID]:
    out: set[UUID] = set()
    for m in messages:
        for value in m.metadata.get("supersedes") or ():
            try:
                out.add(UUID(str(value)))
            except ValueError:
                continue
    return out


def current(messages: Sequence[MessageRecord]) -> list[MessageRecord]:
    """``messages`` without the ones a later message among them replaced."""
    gone = superseded_ids(messages)
    return [m for m in messages if m.id not in gone] if gone else list(messages)
