"""Handoffs (issue 13): the conversation moves to another agent, inside the turn's SQL
transaction. ``empl.conversations.agent_id`` is the conversation's *current* agent (the one the
next turn runs); who wrote each message is its own ``agent_id``, and every move is an audit row
(``conversation.handoff``), a ``handoff`` event in the stream and an entry of the reply's
``metadata.handoffs``."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any
from uuid import UUID

from employeevirtual.agents.runner import AgentFailure, RunOutcome
from employeevirtual.errors import NotFound
from employeevirtual.stores.records import AgentRecord, ConversationRecord, MessageRecord
from employeevirtual.stores.sql.audit import AuditRepository
from employeevirtual.stores.sql.engine import WriteConnection
from employeevirtual.stores.sql.team import TeamRepository

__all__ = ["commit_handoffs", "handoffs_of", "user_handoff", "with_handoffs"]


def user_handoff(
    conversation: ConversationRecord | None, agent: AgentRecord
) -> dict[str, Any] | None:
    """The move a turn makes when its user named another agent than the current one."""
    if conversation is None or conversation.agent_id == agent.id:
        return None
    return {
        "from_agent_id": str(conversation.agent_id),
        "to_agent_id": str(agent.id),
        "to_agent_name": agent.name,
        "by": "user",
    }


def handoffs_of(
    conversation: ConversationRecord | None,
    agent: AgentRecord,
    run: RunOutcome | AgentFailure,
) -> list[dict[str, Any]]:
    """Every move of one turn, in order: the user's, then the agents' (a failed run moves
    the conversation only where its user asked)."""
    moves = [m for m in [user_handoff(conversation, agent)] if m is not None]
    if isinstance(run, RunOutcome):
        moves += [dict(h) for h in run.handoffs]
    return moves


def with_handoffs(reply: MessageRecord, moves: list[dict[str, Any]]) -> MessageRecord:
    return replace(reply, metadata={**reply.metadata, "handoffs": moves})


async def commit_handoffs(
    conn: WriteConnection,
    record: ConversationRecord,
    moves: list[dict[str, Any]],
    *,
    user_id: UUID,
    now: datetime,
    request_id: str | None,
) -> ConversationRecord:
    """The conversation's current agent becomes the last move's, and each move is audited;
    inside the turn's transaction. Returns the row after the move."""
    moved = await TeamRepository(conn).hand_over(record.id, UUID(moves[-1]["to_agent_id"]), now=now)
    if moved is None:
        raise NotFound(f"conversation {record.id} not found")
    audit = AuditRepository(conn)
    for move in moves:
        await audit.record(
            action="conversation.handoff",
            actor_id=user_id,
            target_type="conversation",
            target_id=str(record.id),
            details={
                "from_agent_id": move["from_agent_id"],
                "to_agent_id": move["to_agent_id"],
                "by": move["by"],
                "note": move.get("note"),
                "request_id": request_id,
            },
            now=now,
        )
    return moved
