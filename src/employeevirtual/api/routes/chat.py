from __future__ import annotations

import json
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Body, Header, Query
from fastapi.responses import Response

from employeevirtual.api.deps import (
    ChatDep,
    CurrentUserId,
    IdempotencyDep,
    RuntimeDep,
    SettingsDep,
)
from employeevirtual.api.limits import ChatRateLimit, turn_slot
from employeevirtual.api.schemas import ChatIn, ChatOut, MessageOut, UsageOut
from employeevirtual.chat.idempotency import (
    IdempotencyClaim,
    IdempotencyKeys,
    StoredResponse,
    fingerprint,
)
from employeevirtual.chat.service import AgentRunFailed, ChatService, TurnResult
from employeevirtual.errors import InvalidInput
from employeevirtual.runtime import Runtime

router = APIRouter(prefix="/api/chat", tags=["chat"], dependencies=[ChatRateLimit])


def _chat_out(result: TurnResult) -> ChatOut:
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


def _render(outcome: Any) -> StoredResponse:
    """The response a turn answers, as stored with its Idempotency-Key for replays."""
    if isinstance(outcome, AgentRunFailed):
        body = {"detail": outcome.message, **outcome.extra}
        return StoredResponse(outcome.status_code, json.dumps(body, separators=(",", ":")))
    assert isinstance(outcome, TurnResult)
    return StoredResponse(200, _chat_out(outcome).model_dump_json())


def _stored(response: StoredResponse, *, replayed: bool) -> Response:
    headers = {"Idempotent-Replayed": "true"} if replayed else None
    return Response(
        response.body, status_code=response.status, media_type="application/json", headers=headers
    )


@router.post(
    "/agent",
    response_model=ChatOut,
    responses={
        409: {"description": "a request with the same Idempotency-Key is still running"},
        422: {"description": "invalid input, or an Idempotency-Key reused for another request"},
        502: {"description": "the model provider failed (the user's message is kept)"},
        504: {"description": "the agent timed out (the user's message is kept)"},
    },
)
async def chat_with_agent(
    user_id: CurrentUserId,
    chat: ChatDep,
    keys: IdempotencyDep,
    settings: SettingsDep,
    runtime: RuntimeDep,
    message: Annotated[str | None, Query(description="the user's message (short ones)")] = None,
    agent_id: Annotated[UUID | None, Query()] = None,
    conversation_id: Annotated[UUID | None, Query()] = None,
    body: Annotated[ChatIn | None, Body(description="the same fields, for long messages")] = None,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            description="retry safely: the same key replays the first response (kept 24 h)",
        ),
    ] = None,
) -> Any:
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
    if idempotency_key is None:
        async with turn_slot(runtime, user_id):
            result = await chat.turn(
                user_id, message=message, agent_id=agent_id, conversation_id=conversation_id
            )
        return _chat_out(result)

    claimed = await keys.claim(
        user_id=user_id,
        key=idempotency_key,
        request_fingerprint=fingerprint(
            route="POST /api/chat/agent",
            message=message,
            agent_id=agent_id,
            conversation_id=conversation_id,
        ),
        render=_render,
    )
    if isinstance(claimed, StoredResponse):
        return _stored(claimed, replayed=True)
    return await _turn_with_key(
        runtime,
        chat,
        keys,
        claimed,
        user_id,
        message=message,
        agent_id=agent_id,
        conversation_id=conversation_id,
    )


async def _turn_with_key(
    runtime: Runtime,
    chat: ChatService,
    keys: IdempotencyKeys,
    claim: IdempotencyClaim,
    user_id: UUID,
    *,
    message: str,
    agent_id: UUID | None,
    conversation_id: UUID | None,
) -> Response:
    try:
        # inside the try: a request refused a turn slot (429) releases its key
        async with turn_slot(runtime, user_id):
            await chat.turn(
                user_id,
                message=message,
                agent_id=agent_id,
                conversation_id=conversation_id,
                idempotency=claim,
            )
    except AgentRunFailed:
        if claim.response is None:
            raise
    except BaseException:
        # Release on every failure, a failed COMMIT included (the response was rendered inside
        # the transaction, so ``claim.response`` says nothing about whether it committed).
        # Release deletes only a still-pending key holding our token: a turn that did commit
        # completed the key, and its retry replays the stored response.
        await keys.release(claim)
        raise
    # committed, the failed runs (502/504) included: answer what a replay will answer
    assert claim.response is not None
    return _stored(claim.response, replayed=False)
