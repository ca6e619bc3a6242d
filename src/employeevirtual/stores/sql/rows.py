"""Rows to records: one mapper per record, read by the record's own field names.

A column is read under the field's name (``prefix`` for a joined table's labelled columns), or
under the name ``renames`` gives; a field the row lacks keeps the record's default."""

from __future__ import annotations

from dataclasses import fields
from decimal import Decimal
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


def _values(
    record: type[Any], row: Row[Any], prefix: str = "", renames: dict[str, str] | None = None
) -> dict[str, Any]:
    m = row._mapping
    out: dict[str, Any] = {}
    for f in fields(record):
        column = prefix + (renames or {}).get(f.name, f.name)
        if column in m:
            out[f.name] = m[column]
    return out


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


def message_from_row(row: Row[Any], prefix: str = "") -> MessageRecord:
    v = _values(MessageRecord, row, prefix, {"metadata": "message_metadata"})
    v["metadata"] = v["metadata"] or {}
    return MessageRecord(**v)


def api_key_from_row(row: Row[Any], prefix: str = "") -> ApiKeyRecord:
    return ApiKeyRecord(**_values(ApiKeyRecord, row, prefix))


def rowcount(result: Any) -> int:
    """Rows an UPDATE/DELETE matched (0 for a result that does not count)."""
    return int(result.rowcount) if isinstance(result, CursorResult) else 0
