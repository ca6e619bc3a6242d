"""The ``chat_analytics`` documents of a turn: one for its run, one per run it delegated,
derived from the reply alone (so the relay rebuilds exactly what the turn would have written)."""

from __future__ import annotations

from employeevirtual.stores.mongo.shapes import Document
from employeevirtual.stores.records import MessageRecord

__all__ = ["analytics_document", "delegation_documents"]


def analytics_document(reply: MessageRecord) -> Document | None:
    """The ``chat_analytics`` document of one agent run, derived from its reply alone (so the
    relay rebuilds exactly what the turn would have written); None for a user's message."""
    if reply.message_type not in ("agent", "error"):
        return None
    meta = reply.metadata
    # the tokens and cost of delegated runs are attributed to their agents (their own
    # documents, ``delegation_documents``): this run's document keeps the rest
    delegated = [d for d in meta.get("delegations") or [] if isinstance(d, dict)]
    return {
        "_id": str(reply.id),  # one run, one document, whatever the replays
        "conversation_id": str(reply.conversation_id),
        "user_id": str(reply.user_id),
        "agent_id": str(reply.agent_id) if reply.agent_id else None,
        "message_id": str(reply.id),
        "model": meta.get("model_used"),
        "input_tokens": (meta.get("input_tokens") or 0)
        - sum(d.get("input_tokens") or 0 for d in delegated),
        "output_tokens": (meta.get("output_tokens") or 0)
        - sum(d.get("output_tokens") or 0 for d in delegated),
        "cost": _own_cost(meta.get("cost"), delegated),
        "execution_time": meta.get("execution_time"),
        "tool_calls": meta.get("tool_calls") or 0,
        "delegated_runs": meta.get("delegated_runs") or 0,
        "status": "success" if reply.message_type == "agent" else meta.get("error"),
        "request_id": meta.get("request_id"),
        "timestamp": reply.created_at,
    }


def _own_cost(cost: float | None, delegated: list[Document]) -> float | None:
    if cost is None or not delegated:
        return cost
    return cost - sum(d.get("cost") or 0.0 for d in delegated)


def delegation_documents(reply: MessageRecord) -> list[Document]:
    """One ``chat_analytics`` document per run the reply's turn delegated (issue 13), with the
    delegate's own tokens, cost and time, ``status`` ``delegated`` (not a turn: the usage
    pipelines count no turn, failure or response time for it) and its outcome in
    ``delegation_status``. Derived from the reply alone, like ``analytics_document``."""
    if reply.message_type != "agent":
        return []
    out = []
    for d in reply.metadata.get("delegations") or []:
        if not isinstance(d, dict):
            continue
        out.append(
            {
                "_id": f"{reply.id}:{d.get('id')}",
                "conversation_id": str(reply.conversation_id),
                "user_id": str(reply.user_id),
                "agent_id": d.get("agent_id"),
                "message_id": str(reply.id),
                "model": d.get("model"),
                "input_tokens": d.get("input_tokens") or 0,
                "output_tokens": d.get("output_tokens") or 0,
                "cost": d.get("cost"),
                "execution_time": d.get("execution_time"),
                "tool_calls": 0,
                "delegated_runs": 0,
                "status": "delegated",
                "delegation_status": d.get("status"),
                "delegated_by": d.get("parent_agent_id")
                or (str(reply.agent_id) if reply.agent_id else None),
                "depth": d.get("depth"),
                "request_id": reply.metadata.get("request_id"),
                "timestamp": reply.created_at,
            }
        )
    return out
