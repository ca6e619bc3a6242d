"""The events of a live turn: a public contract (documented in the README).

An event is a kind and a JSON object. Adding a kind is adding a line to ``KINDS``; clients
ignore kinds they do not know (the SSE rule), so new kinds (``sources``, ``handoff``) never
break old clients. ``done`` and ``error`` end a turn's stream.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["KINDS", "TERMINAL", "TurnEvent", "truncate"]

KINDS: dict[str, str] = {
    "turn": "first, before the model runs: turn_id, conversation_id, the stored user message",
    "delta": "a piece of the answer's text: {delta}",
    "tool_call": "the agent calls a tool: {id, name, args}",
    "tool_result": "a tool's result, truncated: {id, name, result, truncated}",
    "sources": "a knowledge search's passages, in full: {id, sources: [{document_id, title, "
    "chunk_id, score, passage, ...}]}",
    "handoff": "the conversation moves to another agent, who answers now: {from_agent_id, "
    "from_agent_name, to_agent_id, to_agent_name, by (user or agent), note}",
    "done": "the turn's JSON answer, as the non-streamed route returns it; last event",
    "error": "the turn failed: {status, kind, detail, conversation_id}; last event",
}
TERMINAL = frozenset({"done", "error"})


@dataclass(frozen=True, slots=True)
class TurnEvent:
    """``id`` is given by the event log when the event is appended (empty before)."""

    kind: str
    data: dict[str, Any]
    id: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown turn event kind {self.kind!r}")

    @property
    def terminal(self) -> bool:
        return self.kind in TERMINAL


def truncate(text: str, limit: int) -> tuple[str, bool]:
    if len(text) <= limit:
        return text, False
    return text[:limit] + "…", True
