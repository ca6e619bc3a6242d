"""Answer again: regenerate the last answer, or edit the last user message and re-answer.
Both stream (``Accept: text/event-stream``) like ``POST /api/chat/agent``."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Header, Response

from employeevirtual.api.deps import ChatDep, CurrentUser, LiveDep
from employeevirtual.api.limits import ChatRateLimit
from employeevirtual.api.routes.chat import answer, started
from employeevirtual.api.schemas import ChatOut, MessageEdit
from employeevirtual.api.sse import wants_sse

router = APIRouter(prefix="/api/conversations", tags=["chat"], dependencies=[ChatRateLimit])

_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {"text/event-stream": {}},
        "description": "the JSON answer; with `Accept: text/event-stream`, the turn's events",
    },
    502: {"description": "the model provider failed (recorded)"},
    504: {"description": "the agent timed out (recorded)"},
}
Accept = Annotated[str | None, Header(description="text/event-stream: stream the answer")]


@router.post("/{conversation_id}/regenerate", response_model=ChatOut, responses=_RESPONSES)
async def regenerate(
    conversation_id: UUID,
    user: CurrentUser,
    chat: ChatDep,
    live: LiveDep,
    response: Response,
    accept: Accept = None,
) -> Response:
    """Runs the agent again on the last user message. The new answer is appended; the one it
    replaces is kept, marked superseded, and left out of the model's context."""
    if wants_sse(accept):
        return started(await live.regenerate(user.id, conversation_id), live)
    return answer(await chat.regenerate(user.id, conversation_id), response)


@router.patch(
    "/{conversation_id}/messages/{message_id}", response_model=ChatOut, responses=_RESPONSES
)
async def edit_message(
    conversation_id: UUID,
    message_id: UUID,
    body: MessageEdit,
    user: CurrentUser,
    chat: ChatDep,
    live: LiveDep,
    response: Response,
    accept: Accept = None,
) -> Response:
    """Edits the last user message (``is_edited``/``edited_at``; the original text stays in the
    audit trail) and answers it again. Append-only: the edited text is a new message that
    supersedes the original, and the new answer supersedes the original's answers."""
    if wants_sse(accept):
        turn = await live.edit(user.id, conversation_id, message_id, content=body.content)
        return started(turn, live)
    outcome = await chat.edit(user.id, conversation_id, message_id, content=body.content)
    return answer(outcome, response)
