"""Rows to records: one mapper per record, read by the record's own field names.

A column is read under the field's name (``prefix`` for a joined table's labelled columns), or
under the name ``renames`` gives; a field the row lacks keeps the record's default."""

from __future__ import annotations

from dataclasses import fields
from decimal import Decimal
from functools import cache
from typing import Any
from uuid import UUID

from sqlalchemy.engine import CursorResult, Row

from employeevirtual.stores.records import (
    AgentRecord,
    ApiKeyRecord,
    ConversationRecord,
    MessageRecord,
    UserRecord,
)

__all__ = [
    "agent_from_row",
    "api_key_from_row",
    "conversation_from_row",
    "message_from_row",
    "rowcount",
    "user_from_row",
]


Renames = tuple[tuple[str, str], ...]  # (field, column): a column read under another name


@cache
def _columns(record: Any, prefix: str, renames: Renames) -> tuple[tuple[str, str], ...]:
    """(field, column) for each of the record's fields."""
    named = dict(renames)
    return tuple((f.name, prefix + named.get(f.name, f.name)) for f in fields(record))


@cache
def _positions(
    record: Any, prefix: str, renames: Renames, keys: tuple[str, ...]
) -> tuple[tuple[str, int], ...] | None:
    """(field, position in the row) for the fields a row of these ``keys`` has; None when a
    key repeats (read by name then, where SQLAlchemy refuses an ambiguous one)."""
    if len(set(keys)) != len(keys):
        return None
    position = {key: i for i, key in enumerate(keys)}
    return tuple(
        (name, position[column])
        for name, column in _columns(record, prefix, renames)
        if column in position
    )


def _values(record: Any, row: Row[Any], prefix: str = "", renames: Renames = ()) -> dict[str, Any]:
    # a SQLAlchemy row is read by position, the plan cached by its keys (reading each field by
    # name cost ~20 us a row: a conversation's window, a summary pass's batch)
    keys = getattr(row, "_fields", None)  # None: a direct statement's row (a dict inside)
    plan = _positions(record, prefix, renames, keys) if keys is not None else None
    if plan is not None:
        return {name: row[i] for name, i in plan}
    m = row._mapping
    return {name: m[column] for name, column in _columns(record, prefix, renames) if column in m}


def user_from_row(row: Row[Any], prefix: str = "") -> UserRecord:
    return UserRecord(**_values(UserRecord, row, prefix))


def agent_from_row(row: Row[Any], prefix: str = "") -> AgentRecord:
    v = _values(AgentRecord, row, prefix)
    v["model_settings"] = v["model_settings"] or {}
    v["tools"] = v["tools"] or []
    v["knowledge_base_ids"] = [UUID(str(i)) for i in v.get("knowledge_base_ids") or []]
    v["delegate_ids"] = [UUID(str(i)) for i in v.get("delegate_ids") or []]
    v["memory"] = v.get("memory") or {}
    return AgentRecord(**v)


def conversation_from_row(row: Row[Any], prefix: str = "") -> ConversationRecord:
    v = _values(ConversationRecord, row, prefix)
    v["metadata"] = v["metadata"] or {}
    v["total_cost"] = Decimal(v["total_cost"])
    v["total_response_time"] = Decimal(v["total_response_time"])
    return ConversationRecord(**v)


_MESSAGE_RENAMES: Renames = (("metadata", "message_metadata"),)


def message_from_row(row: Row[Any], prefix: str = "") -> MessageRecord:
    v = _values(MessageRecord, row, prefix, _MESSAGE_RENAMES)
    v["metadata"] = v["metadata"] or {}
    return MessageRecord(**v)


def api_key_from_row(row: Row[Any], prefix: str = "") -> ApiKeyRecord:
    return ApiKeyRecord(**_values(ApiKeyRecord, row, prefix))


def rowcount(result: Any) -> int:
    """Rows an UPDATE/DELETE matched (0 for a result that does not count)."""
    return int(result.rowcount) if isinstance(result, CursorResult) else 0
