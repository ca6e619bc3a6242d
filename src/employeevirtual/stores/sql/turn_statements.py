"""The turn's write statements on ``empl.conversations``, built once with bound parameters:
the counters' ``UPDATE … RETURNING`` and, on PostgreSQL, that update with the INSERT of the
turn's messages as one statement (``ConversationRepository.apply_turn`` and ``append``); on
SQLite the INSERT that follows that update in the same trip, its seqs taken from it in SQL."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from sqlalchemy import Integer, bindparam, insert, select, union_all, update

from employeevirtual.stores.records import ConversationRecord, MessageRecord, TurnUsage
from employeevirtual.stores.sql.direct import DirectStatement
from employeevirtual.stores.sql.tables import conversations, messages

__all__ = [
    "APPLY_TURN",
    "INSERT_TURN_MESSAGE",
    "MESSAGE_COLUMNS",
    "added",
    "apply_turn_with_messages",
    "numbered",
    "turn_parameters",
]


def _apply_turn() -> Any:
    """``ConversationRepository.apply_turn``'s ``UPDATE … RETURNING``, built once with bound
    parameters (building and cache-keying it for every turn cost about 0.25 ms of CPU)."""
    c = conversations.c

    def param(name: str, column: Any) -> Any:
        return bindparam(name, type_=column.type)

    now = param("now", c.updated_at)
    return (
        update(conversations)
        .where(c.id == param("conversation_id", c.id))
        .values(
            message_count=c.message_count + param("messages", c.message_count),
            total_tokens=c.total_tokens + param("tokens", c.total_tokens),
            total_cost=c.total_cost + param("cost", c.total_cost),
            total_response_time=c.total_response_time
            + param("response_time", c.total_response_time),
            agent_runs=c.agent_runs + param("runs", c.agent_runs),
            last_message_at=now,
            updated_at=now,
            last_error=param("error", c.last_error),
        )
        .returning(conversations)
    )


APPLY_TURN = DirectStatement(_apply_turn())

# the columns of a message the turn's statement takes as parameters (not its conversation, seq)
MESSAGE_COLUMNS = (
    "id",
    "user_id",
    "agent_id",
    "content",
    "message_type",
    "message_metadata",
    "created_at",
    "is_edited",
    "edited_at",
)


def _apply_turn_with_messages(count: int) -> Any:
    """PostgreSQL: ``_apply_turn`` and the INSERT of its ``count`` messages as one statement (a
    data-modifying CTE), the seqs taken from the row the UPDATE returns, the row as its result.
    The i-th message's columns are the parameters ``<column>_<i>``."""
    turn = _apply_turn().cte("turn")
    m = messages.c
    rows = [
        select(
            *(bindparam(f"{name}_{i}", type_=m[name].type).label(name) for name in MESSAGE_COLUMNS),
            turn.c.id.label("conversation_id"),
            (turn.c.message_count - (count - 1 - i)).label("seq"),
        )
        for i in range(count)
    ]
    source = rows[0] if count == 1 else union_all(*rows)
    inserted = insert(messages).from_select([*MESSAGE_COLUMNS, "conversation_id", "seq"], source)
    return select(turn).add_cte(inserted.cte("turn_messages"))


_APPLY_TURN_WITH: dict[int, DirectStatement] = {}  # by message count (one or two in a turn)


def apply_turn_with_messages(count: int) -> DirectStatement:
    """The one-statement turn write for ``count`` messages, built once per count."""
    statement = _APPLY_TURN_WITH.get(count)
    if statement is None:
        statement = _APPLY_TURN_WITH[count] = DirectStatement(_apply_turn_with_messages(count))
    return statement


def _insert_turn_message() -> Any:
    """SQLite: the INSERT of one of a turn's messages (run once per message), right after
    ``APPLY_TURN`` in the same transaction, its seq read from the row that update moved: the
    conversation's ``message_count`` less ``back``, the messages after it in the turn (as
    ``numbered``, and as PostgreSQL's statement). In SQL, so the trip that runs both needs
    nothing of the first statement's result to run the second."""
    m, c = messages.c, conversations.c
    conversation_id = bindparam("conversation_id", type_=m.conversation_id.type)
    seq = select(c.message_count).where(c.id == conversation_id).scalar_subquery() - bindparam(
        "back", type_=Integer()
    )
    values = {name: bindparam(name, type_=m[name].type) for name in MESSAGE_COLUMNS}
    return insert(messages).values(**values, conversation_id=conversation_id, seq=seq)


INSERT_TURN_MESSAGE = DirectStatement(_insert_turn_message())


def added(usage: TurnUsage | None) -> tuple[int, Decimal, Decimal, int]:
    """What a commit adds to the counters: tokens, cost, response time and agent runs (none
    of them for a commit in which no agent ran, ``usage`` None)."""
    if usage is None:
        return 0, Decimal(0), Decimal(0), 0
    return (
        usage.total_tokens,
        Decimal(str(usage.cost or 0)),
        Decimal(str(usage.execution_time)),
        1,
    )


def turn_parameters(
    conversation_id: UUID, usage: TurnUsage | None, messages: int, now: datetime, error: str | None
) -> dict[str, Any]:
    """``_apply_turn``'s parameters."""
    tokens, cost, response_time, runs = added(usage)
    return {
        "conversation_id": conversation_id,
        "messages": messages,
        "tokens": tokens,
        "cost": cost,
        "response_time": response_time,
        "runs": runs,
        "now": now,
        "error": error,
    }


def numbered(record: ConversationRecord, new: Sequence[MessageRecord]) -> list[MessageRecord]:
    """``new`` with the seqs the turn took: they end at the row's ``message_count``."""
    first = record.message_count - len(new) + 1
    return [replace(m, seq=first + i) for i, m in enumerate(new)]
