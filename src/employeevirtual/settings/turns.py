"""Chat turns: live turns (streaming), message, agent and team limits, the conversation window and
page sizes."""

from __future__ import annotations

from pydantic import BaseModel, Field

__all__ = ["TurnSettings"]


class TurnSettings(BaseModel):
    # live turns (streaming): the offline model's pace, the turn event log's bounds
    offline_stream_delay_ms: int = Field(
        default=40, ge=0, le=5000, description="pause between the offline model's words"
    )
    stream_retention_seconds: float = Field(
        default=600.0, gt=0, description="a finished turn's events are kept this long"
    )
    stream_max_events: int = Field(default=10_000, ge=16, description="events kept per turn")
    stream_max_turns: int = Field(
        default=10_000, ge=1, description="turns kept in process (without Redis)"
    )
    stream_heartbeat_seconds: float = Field(default=15.0, gt=0, le=15.0)
    stream_frame_ms: int = Field(
        default=25,
        ge=0,
        le=1000,
        description="a stream sends the answer's text at most this often (the first words at "
        "once, later ones together); 0: every piece as it comes",
    )
    stream_key_prefix: str = Field(default="ev:turn:", description="Redis key prefix")
    interrupted_turn_sweep_seconds: float = Field(
        default=60.0, ge=0, description="look for turns a dead process left unanswered; 0: never"
    )
    interrupted_turn_grace_seconds: float = Field(
        default=300.0,
        gt=0,
        description="an unanswered user message older than the agent timeout plus this is "
        "an interrupted turn (its failure is recorded)",
    )
    tool_result_max_chars: int = Field(
        default=2000, ge=16, description="a tool result is cut here, in events and stored"
    )
    shutdown_grace_seconds: float = Field(
        default=30.0, ge=0, description="running turns may finish this long at shutdown"
    )

    max_message_chars: int = Field(default=32_000, ge=1)
    max_instructions_chars: int = Field(default=20_000, ge=1)
    max_tools_per_agent: int = Field(default=16, ge=0)
    # teams of agents (issue 13)
    max_delegates_per_agent: int = Field(default=8, ge=0, le=32)
    delegation_max_depth: int = Field(
        default=3, ge=1, le=8, description="how deep delegates may ask delegates in one turn"
    )
    handoffs_per_turn: int = Field(
        default=2, ge=0, le=8, description="how many times agents may hand a turn over"
    )
    conversation_window: int = Field(
        default=50, ge=1, le=1000, description="messages kept in the MongoDB conversation doc"
    )
    page_limit_default: int = Field(default=20, ge=1)
    page_limit_max: int = Field(default=100, ge=1)
    history_limit_default: int = Field(default=50, ge=1)
    history_limit_max: int = Field(default=200, ge=1)
