"""What the reconciler finds (``Drift``, ``ReconcileReport``) and plans (``RepairPlan``), and
the comparisons of a conversation's MongoDB document against SQL that need no store."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from employeevirtual.stores.records import ConversationRecord, FeedbackRecord
from employeevirtual.stores.sql.summaries import SummaryRecord

__all__ = [
    "Drift",
    "ReconcileReport",
    "RepairPlan",
    "compare_summary",
    "document_differences",
    "span",
]


@dataclass(frozen=True, slots=True)
class Drift:
    conversation_id: str
    kind: str  # missing_messages, extra_messages, seq_mismatch, missing_document, counters,
    # orphan, sync_marker
    detail: str
    repaired: bool = False


@dataclass(slots=True)
class ReconcileReport:
    conversations: int = 0
    drifts: list[Drift] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.drifts


@dataclass(slots=True)
class RepairPlan:
    """What one conversation needs, found by the comparison."""

    drifts: list[Drift] = field(default_factory=list)
    delete_ids: list[str] = field(default_factory=list)
    insert_ids: list[UUID] = field(default_factory=list)
    rebuild: bool = False
    observed_last_seq: int | None = None
    feedback: list[FeedbackRecord] = field(default_factory=list)  # to write to MongoDB again


def _close(a: Any, b: Any) -> bool:
    try:
        return bool(math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-6))
    except (TypeError, ValueError):
        return False


def _same_instant(a: datetime | None, b: Any) -> bool:
    if a is None or not isinstance(b, datetime):
        return a is None and b is None
    other: datetime = b if b.tzinfo else b.replace(tzinfo=UTC)
    return abs((a - other).total_seconds()) < 0.001


def document_differences(conversation: ConversationRecord, document: dict[str, Any]) -> list[str]:
    """What the conversation document's counters, title, status and agent say otherwise than
    SQL (empty: they agree)."""
    meta = document.get("metadata") or {}
    count = conversation.message_count
    expected = {
        "message_count": count,
        "total_tokens": conversation.total_tokens,
        "agent_runs": conversation.agent_runs,
        "last_seq": count,
    }
    wrong = [f"{k} {meta.get(k)}!={v}" for k, v in expected.items() if meta.get(k) != v]
    if not _close(meta.get("total_cost"), conversation.total_cost):
        wrong.append(f"total_cost {meta.get('total_cost')}!={conversation.total_cost}")
    last_activity = conversation.last_message_at or conversation.created_at
    if not _same_instant(last_activity, meta.get("last_activity")):
        wrong.append(f"last_activity {meta.get('last_activity')}!={last_activity}")
    if meta.get("status") != conversation.status or document.get("title") != conversation.title:
        wrong.append("title/status")
    if document.get("agent_id") != str(conversation.agent_id):  # moved by a handoff
        wrong.append(f"agent_id {document.get('agent_id')}!={conversation.agent_id}")
    return wrong


def compare_summary(
    plan: RepairPlan, cid: str, doc: dict[str, Any] | None, summary: SummaryRecord | None
) -> None:
    """The conversation document's summary (``context.conversation_state``) against SQL's
    current version; a difference rebuilds the document, summary included."""
    if doc is None:
        return  # missing_document already rebuilds it
    state = (doc.get("context") or {}).get("conversation_state")
    held = state.get("version") if isinstance(state, dict) else None
    wanted = summary.version if summary is not None else None
    if held != wanted:
        plan.drifts.append(Drift(cid, "summary", f"summary version {held}!={wanted}"))
        plan.rebuild = True


def span(seqs: Sequence[int]) -> str:
    seqs = sorted(seqs)
    return str(seqs[0]) if len(seqs) == 1 else f"{seqs[0]}..{seqs[-1]}"
