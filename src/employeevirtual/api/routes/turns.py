"""A live turn's events (resume with Last-Event-ID) and its cancellation."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import Header, status
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from employeevirtual.api.deps import CurrentUser, LiveDep
from employeevirtual.api.routes.chat import follow_turn
from employeevirtual.api.routing import Router
from employeevirtual.api.sse import sse_response
from employeevirtual.streaming.log import parse_id

router = Router(prefix="/api/chat/turns", tags=["chat"])


class CancelOut(BaseModel):
    turn_id: UUID
    status: str


@router.get(
    "/{turn_id}/events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "the turn's events"}},
)
async def turn_events(
    turn_id: UUID,
    user: CurrentUser,
    live: LiveDep,
    last_event_id: Annotated[
        str | None,
        Header(alias="Last-Event-ID", description="replay the events after this id"),
    ] = None,
) -> Any:
    """Replays the events after ``Last-Event-ID`` (all without it), then follows the turn live
    until ``done``/``error``. Kept for ``EV_STREAM_RETENTION_SECONDS`` after the turn ended."""
    await live.owned(turn_id, user.id)
    return sse_response(follow_turn(live, turn_id, parse_id(last_event_id)))


@router.post("/{turn_id}/cancel", status_code=status.HTTP_202_ACCEPTED, response_model=CancelOut)
async def cancel_turn(turn_id: UUID, user: CurrentUser, live: LiveDep) -> CancelOut:
    """Stops the agent; what it wrote so far is committed once as its message (metadata
    ``cancelled: true``) and the stream ends with ``done``. 409 when the turn already ended."""
    await live.cancel(turn_id, user.id)
    return CancelOut(turn_id=turn_id, status="cancelling")
