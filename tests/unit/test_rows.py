"""Rows to records read by position (the plan cached by the row's keys) give what reading each
field by name gives: renamed and prefixed columns, a missing column left to the record's
default, a direct statement's row and a row with a repeated key read by name."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from employeevirtual.stores.sql.direct import DirectRow
from employeevirtual.stores.sql.rows import message_from_row, user_from_row


def _row(values: dict[str, Any], *extra: tuple[str, Any]) -> Any:
    columns = [sa.literal(v).label(k) for k, v in values.items()]
    columns += [sa.literal(v).label(k) for k, v in extra]
    engine = sa.create_engine("sqlite://")
    with engine.connect() as conn:
        row = conn.execute(sa.select(*columns)).first()
    engine.dispose()
    return row


MESSAGE = {
    "seq": 7,
    "id": str(uuid.uuid4()),
    "conversation_id": str(uuid.uuid4()),
    "user_id": str(uuid.uuid4()),
    "agent_id": None,
    "content": "hello",
    "message_type": "user",
    "message_metadata": "meta",
    "created_at": "2026-01-01",
    "is_edited": True,
}


def test_a_message_row_read_by_position_matches_the_columns() -> None:
    for row in (_row(MESSAGE), _row(MESSAGE), DirectRow(dict(MESSAGE))):  # the cached plan too
        record = message_from_row(row)
        assert record.seq == 7 and record.id == MESSAGE["id"]
        assert record.conversation_id == MESSAGE["conversation_id"]
        assert record.user_id == MESSAGE["user_id"] and record.agent_id is None
        assert record.content == "hello" and record.message_type == "user"
        assert record.metadata == "meta"  # renamed: message_metadata
        assert record.created_at == "2026-01-01" and record.is_edited is True
        assert record.feedback is None and record.edited_at is None  # absent: the default


def test_prefixed_columns_and_a_repeated_key() -> None:
    now = datetime.now(UTC).isoformat()
    user = {
        "id": "u1",
        "email": "a@example.com",
        "name": "Ana",
        "password_hash": "h",
        "role": "user",
        "is_active": True,
        "created_at": now,
        "updated_at": now,
    }
    prefixed = {f"owner_{k}": v for k, v in user.items()}
    for row in (_row(prefixed, ("id", "other")), _row(prefixed, ("id", "x"), ("id", "y"))):
        record = user_from_row(row, prefix="owner_")
        assert record.id == "u1" and record.email == "a@example.com" and record.name == "Ana"
