"""Answer again: regenerate the last answer, or edit the last user message and re-answer.
Both stream (``Accept: text/event-stream``) like ``POST /api/chat/agent``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Header

from employeevirtual.api.deps import ChatDep, CurrentUser, LiveDep, RuntimeDep, SettingsDep
from employeevirtual.api.limits import ChatRateLimit, turn_slot
from employeevirtual.api.routes.chat import _chat_out, follow_turn, turn_event
from employeevirtual.api.schemas import ChatOut, MessageEdit
from employeevirtual.api.sse import sse_response, wants_sse
from employeevirtual.chat.service import OpenedTurn
from employeevirtual.errors import InvalidInput

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


async def _answer(
    runtime: RuntimeDep,
    chat: ChatDep,
    live: LiveDep,
    user_id: UUID,
    accept: str | None,
    open_turn: Callable[[], Awaitable[OpenedTurn]],
) -> Any:
    stack = AsyncExitStack()
    try:
        await stack.enter_async_context(turn_slot(runtime, user_id))
        opened = await open_turn()
        if wants_sse(accept):
            started = await live.start_opened(user_id, opened, render=turn_event, cleanup=stack)
            stack = AsyncExitStack()  # the live turn owns the slot now
            return sse_response(
                follow_turn(live, started.turn_id, 0),
                headers={
                    "X-Turn-Id": str(started.turn_id),
                    "X-Conversation-Id": str(started.conversation_id),
                },
            )
        return _chat_out(await chat.answer(opened))
    finally:
        await stack.aclose()


@router.post("/{conversation_id}/regenerate", response_model=ChatOut, responses=_RESPONSES)
async def regenerate(
    conversation_id: UUID,
    user: CurrentUser,
    chat: ChatDep,
    live: LiveDep,
    runtime: RuntimeDep,
    accept: Accept = None,
) -> Any:
    """Runs the agent again on the last user message. The new answer is appended; the one it
    replaces is kept, marked superseded, and left out of the model's context."""
    return await _answer(
        runtime, chat, live, user.id, accept, lambda: chat.open_regenerate(user.id, conversation_id)
    )


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
    runtime: RuntimeDep,
    settings: SettingsDep,
    accept: Accept = None,
) -> Any:
    """Edits the last user message (``is_edited``/``edited_at``; the original text stays in the
    audit trail) and answers it again. Append-only: the edited text is a new message that
    supersedes the original, and the new answer supersedes the original's answers."""
    content = body.content
    if not content.strip():
        raise InvalidInput("content cannot be empty or only whitespace")
    if len(content) > settings.max_message_chars:
        raise InvalidInput(
            f"content is {len(content)} characters; the limit is {settings.max_message_chars}"
        )
    return await _answer(
        runtime,
        chat,
        live,
        user.id,
        accept,
        lambda: chat.open_edit(user.id, conversation_id, message_id, content=content),
    )
