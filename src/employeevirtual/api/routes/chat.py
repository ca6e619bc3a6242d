from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Body, Header, Query
from fastapi.responses import Response

from employeevirtual.api.deps import ChatDep, CurrentUserId
from employeevirtual.api.limits import ChatRateLimit
from employeevirtual.api.schemas import ChatIn, ChatOut
from employeevirtual.chat.idempotency import IdempotencyClaim, StoredResponse
from employeevirtual.chat.responses import turn_response
from employeevirtual.errors import InvalidInput

router = APIRouter(prefix="/api/chat", tags=["chat"], dependencies=[ChatRateLimit])


def _respond(answer: StoredResponse, headers: Mapping[str, str] | None = None) -> Response:
    return Response(
        answer.body, status_code=answer.status, media_type="application/json", headers=headers
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
    response: Response,
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
) -> Response:
    """One turn: the seed's ``POST /api/chat/agent?message=...&agent_id=...``, or a JSON body."""
    if body is not None:
        if message is not None or agent_id is not None or conversation_id is not None:
            raise InvalidInput("send the fields either as query parameters or as a JSON body")
        message, agent_id, conversation_id = body.message, body.agent_id, body.conversation_id
    request = chat.request(message, agent_id=agent_id, conversation_id=conversation_id)
    claim: IdempotencyClaim | None = None
    if idempotency_key is not None:
        claimed = await chat.claim(user_id, request, idempotency_key)
        if isinstance(claimed, StoredResponse):
            return _respond(claimed, {"Idempotent-Replayed": "true"})
        claim = claimed
    answer = turn_response(await chat.turn(user_id, request, claim=claim))
    # a 200 without a key carries the chat rate limit's headers (set on ``response``)
    return _respond(answer, response.headers if claim is None and answer.status == 200 else None)
