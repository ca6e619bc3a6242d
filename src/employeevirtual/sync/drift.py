"""What counts as drift between the stores, for one conversation (``RepairPlan``), and what a
reconcile round reports: SQL is the truth, MongoDB is compared with it."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from employeevirtual.stores.records import ConversationRecord, FeedbackRecord

__all__ = ["CheckState", "Drift", "ReconcileReport", "RepairPlan"]


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
    """What one conversation needs, found by comparing the stores: the drifts, and what repair
    deletes from and writes to MongoDB."""

    conversation_id: str
    drifts: list[Drift] = field(default_factory=list)
    delete_ids: list[str] = field(default_factory=list)
    insert_ids: list[UUID] = field(default_factory=list)
    rebuild: bool = False
    observed_last_seq: int | None = None
    feedback: list[FeedbackRecord] = field(default_factory=list)  # to write to MongoDB again

    def drift(self, kind: str, detail: str) -> None:
        self.drifts.append(Drift(self.conversation_id, kind, detail))

    def compare_ids(self, sql_ids: dict[str, int], mongo_ids: dict[str, int]) -> None:
        """Message ids (to their seq) in each store: what MongoDB lacks, holds too many of, or
        holds at another seq."""
        missing = sorted(set(sql_ids) - set(mongo_ids), key=sql_ids.__getitem__)
        extra = sorted(set(mongo_ids) - set(sql_ids), key=mongo_ids.__getitem__)
        moved = [i for i in set(sql_ids) & set(mongo_ids) if sql_ids[i] != mongo_ids[i]]
        if missing:
            seqs = [sql_ids[i] for i in missing]
            self.drift("missing_messages", f"{len(missing)} not in MongoDB (seq {_span(seqs)})")
        if extra:
            seqs = [mongo_ids[i] for i in extra]
            self.drift("extra_messages", f"{len(extra)} not in SQL (seq {_span(seqs)})")
        if moved:
            self.drift("seq_mismatch", f"{len(moved)} with another seq than in SQL")
        self.delete_ids = extra + moved
        self.insert_ids = [UUID(i) for i in missing + moved]

    def compare_document(
        self, conversation: ConversationRecord, summary: dict[str, Any] | None
    ) -> None:
        """The conversation document's counters and fields against SQL's; any difference
        means a rebuild."""
        if summary is None:
            self.drift("missing_document", "no chat_conversations document")
            self.rebuild = True
            return
        count = conversation.message_count
        meta = summary.get("metadata") or {}
        self.observed_last_seq = meta.get("last_seq")
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
        if meta.get("status") != conversation.status or summary.get("title") != (
            conversation.title
        ):
            wrong.append("title/status")
        if wrong:
            self.drift("counters", "; ".join(wrong))
            self.rebuild = True


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


@dataclass(slots=True)
class CheckState:
    """The last checks, for readiness."""

    last_round_at: datetime | None = None
    last_round_drifts: int = 0
    last_round_unrepaired: int = 0
    rounds: int = 0
    repaired_total: int = 0
    last_totals_at: datetime | None = None
    missing_messages: int = 0  # MongoDB has fewer than SQL says it was given
    missing_conversations: int = 0
    last_error: str | None = None

    @property
    def drift(self) -> bool:
        return bool(
            self.missing_messages or self.missing_conversations or self.last_round_unrepaired
        )


def _span(seqs: Sequence[int]) -> str:
    seqs = sorted(seqs)
    return str(seqs[0]) if len(seqs) == 1 else f"{seqs[0]}..{seqs[-1]}"
