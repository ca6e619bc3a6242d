"""Memory (issue 18): conversation summaries, memories about the person."""

from __future__ import annotations

from pydantic import BaseModel, Field

__all__ = ["MemorySettings"]


class MemorySettings(BaseModel):
    memory_enabled: bool = Field(
        default=True, description="memory for agents whose own setting allows it; false: none"
    )
    memory_summary_model: str | None = Field(
        default=None,
        description="model that writes conversation summaries; default: the agent's own model "
        "('offline' makes a deterministic extractive summary)",
    )
    memory_summary_max_chars: int = Field(
        default=2000, ge=200, le=20_000, description="a summary is never longer than this"
    )
    memory_summary_every: int = Field(
        default=10, ge=1, description="summarize once this many messages left the window"
    )
    memory_summary_batch: int = Field(
        default=100, ge=2, le=1000, description="messages folded into a summary per model call"
    )
    memory_summary_pass_messages: int = Field(
        default=500,
        ge=16,
        le=100_000,
        description="messages one background summary pass reads at most; a longer catch-up "
        "goes on in later passes",
    )
    memory_summary_timeout_seconds: float = Field(default=60.0, gt=0)
    memory_summary_concurrency: int = Field(
        default=2, ge=1, le=64, description="summaries written at once by this process"
    )
    memory_summary_retry_seconds: float = Field(
        default=60.0, ge=0, description="after a failed summary, wait this long for that one"
    )
    memory_summary_versions: int = Field(
        default=5, ge=1, le=100, description="summary versions kept per conversation"
    )
    memory_max_per_scope: int = Field(
        default=100, ge=1, le=1000, description="memories per person and agent (or conversation)"
    )
    memory_max_chars: int = Field(default=500, ge=16, le=1000, description="one memory's size")
    memory_recall: int = Field(
        default=8, ge=1, le=100, description="memories given to the model at a turn's start"
    )
    memory_saves_per_turn: int = Field(
        default=5, ge=1, le=32, description="remember/forget calls one turn may make"
    )
