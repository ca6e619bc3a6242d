from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Body, Query

from employeevirtual.api.deps import ChatDep, CurrentUserId, SettingsDep
from employeevirtual.api.schemas import ChatIn, ChatOut, MessageOut, UsageOut
from employeevirtual.errors import InvalidInput

router = APIRouter(prefix="/api/chat", tags=["chat"])


@router.post("/agent")
async def chat_with_agent(
    user: CurrentUserId,
    chat: ChatDep,
    settings: SettingsDep,
    message: Annotated[str | None, Query(description="the user's message (short ones)")] = None,
    agent_id: Annotated[UUID | None, Query()] = None,
    conversation_id: Annotated[UUID | None, Query()] = None,
    body: Annotated[ChatIn | None, Body(description="the same fields, for long messages")] = None,
) -> ChatOut:
    """One turn: the seed's ``POST /api/chat/agent?message=...&agent_id=...``, or a JSON body."""
    if body is not None:
        if message is not None or agent_id is not None or conversation_id is not None:
            raise InvalidInput("send the fields either as query parameters or as a JSON body")
        message, agent_id, conversation_id = body.message, body.agent_id, body.conversation_id
    if message is None or not message.strip():
        raise InvalidInput("message is required and cannot be empty or only whitespace")
    if len(message) > settings.max_message_chars:
        raise InvalidInput(
            f"message is {len(message)} characters; the limit is {settings.max_message_chars}"
        )
    if agent_id is None and conversation_id is None:
        raise InvalidInput("give agent_id to start a conversation, or conversation_id")
    result = await chat.turn(
        user, message=message, agent_id=agent_id, conversation_id=conversation_id
    )
    outcome = result.outcome
    return ChatOut(
        conversation_id=result.conversation.id,
        user_message=MessageOut.of(result.user_message),
        agent_message=MessageOut.of(result.agent_message),
        usage=UsageOut(
            input_tokens=outcome.input_tokens,
            output_tokens=outcome.output_tokens,
            total_tokens=outcome.tokens,
            cost=None if outcome.cost is None else float(outcome.cost),
        ),
    )
