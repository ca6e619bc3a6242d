from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Body, Header, Query
from fastapi.responses import Response

from employeevirtual.api.deps import (
    ChatDep,
    CurrentUserId,
    IdempotencyDep,
    LiveDep,
    RuntimeDep,
    SettingsDep,
    require_active,
)
from employeevirtual.api.limits import ChatRateLimit, turn_slot
from employeevirtual.api.request_id import current_request_id
from employeevirtual.api.schemas import ChatIn, ChatOut, MessageOut, UsageOut
from employeevirtual.api.sse import HEARTBEAT, encode, sse_response, wants_sse
from employeevirtual.chat.idempotency import (
    IdempotencyClaim,
    IdempotencyKeys,
    StoredResponse,
    fingerprint,
)
from employeevirtual.chat.live import LiveTurns
from employeevirtual.chat.service import AgentRunFailed, ChatService, TurnResult
from employeevirtual.errors import InvalidInput
from employeevirtual.runtime import Runtime
from employeevirtual.streaming.events import TurnEvent

router = APIRouter(prefix="/api/chat", tags=["chat"], dependencies=[ChatRateLimit])


def _chat_out(result: TurnResult) -> ChatOut:
    outcome = result.outcome
    return ChatOut(
        conversation_id=result.conversation.id,
        user_message=MessageOut.of(result.user_message),
        agent_message=(agent_message := MessageOut.of(result.agent_message)),
        sources=agent_message.sources,
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


def turn_event(result: TurnResult | AgentRunFailed) -> TurnEvent:
    """A live turn's last event: ``done`` with the non-streamed JSON body, or ``error``."""
    if isinstance(result, AgentRunFailed):
        return TurnEvent(
            "error",
            {
                "status": result.status_code,
                "kind": result.kind,
                "detail": result.message,
                **result.extra,
            },
        )
    return TurnEvent("done", _chat_out(result).model_dump(mode="json"))


async def follow_turn(live: LiveTurns, turn_id: UUID, after: int) -> AsyncIterator[bytes]:
    """The turn's events as SSE frames, with a comment heartbeat while nothing happens. A
    client that goes away only stops this generator: the turn goes on."""
    async for batch in live.events(turn_id, after):
        yield HEARTBEAT if batch is None else b"".join(encode(e) for e in batch)


def _replayed_events(response: StoredResponse) -> list[TurnEvent]:
    """A finished turn's stored answer, told again as the events a live one ends with."""
    body = json.loads(response.body)
    if response.status != 200:
        return [TurnEvent("error", {"status": response.status, **body}, "1")]
    user = body["user_message"]
    first = {
        "turn_id": None,
        "conversation_id": body["conversation_id"],
        "user_message": {
            "id": user["id"],
            "seq": user["seq"],
            "content": user["content"],
            "timestamp": user["timestamp"],
        },
    }
    return [TurnEvent("turn", first, "1"), TurnEvent("done", body, "2")]


async def _frames(events: list[TurnEvent]) -> AsyncIterator[bytes]:
    for event in events:
        yield encode(event)


async def _start_stream(
    runtime: Runtime,
    live: LiveTurns,
    user_id: UUID,
    *,
    message: str,
    agent_id: UUID | None,
    conversation_id: UUID | None,
    claim: IdempotencyClaim | None,
) -> Response:
    stack = AsyncExitStack()
    try:
        await stack.enter_async_context(turn_slot(runtime, user_id))
        started = await live.start(
            user_id,
            message=message,
            agent_id=agent_id,
            conversation_id=conversation_id,
            render=turn_event,
            cleanup=stack,
            idempotency=claim,
            request_id=current_request_id(),
        )
    except BaseException:
        await stack.aclose()
        if claim is not None:
            await runtime.idempotency.release(claim)
        raise
    return sse_response(
        follow_turn(live, started.turn_id, 0),
        headers={
            "X-Turn-Id": str(started.turn_id),
            "X-Conversation-Id": str(started.conversation_id),
        },
    )


@router.post(
    "/agent",
    response_model=ChatOut,
    responses={
        402: {"description": "a monthly budget of the user or the agent is used up"},
        409: {"description": "a request with the same Idempotency-Key is still running"},
        422: {"description": "invalid input, or an Idempotency-Key reused for another request"},
        502: {"description": "the model provider failed (the user's message is kept)"},
        504: {"description": "the agent timed out (the user's message is kept)"},
        200: {
            "content": {"text/event-stream": {}},
            "description": "the JSON answer; with `Accept: text/event-stream`, the turn's "
            "events (turn, delta, tool_call, tool_result, done | error)",
        },
    },
)
async def chat_with_agent(
    user_id: CurrentUserId,
    chat: ChatDep,
    keys: IdempotencyDep,
    settings: SettingsDep,
    runtime: RuntimeDep,
    live: LiveDep,
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
    accept: Annotated[
        str | None, Header(description="text/event-stream: stream the turn as SSE")
    ] = None,
) -> Any:
    """One turn: the seed's ``POST /api/chat/agent?message=...&agent_id=...``, or a JSON body."""
    if idempotency_key is not None:
        # the user check comes first: a key's replay or its 422 must not answer a deactivated
        # user (without a key, the turn's own single read checks the user before anything)
        await require_active(runtime, user_id)
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
    stream = wants_sse(accept)
    if stream and idempotency_key is None:
        return await _start_stream(
            runtime,
            live,
            user_id,
            message=message,
            agent_id=agent_id,
            conversation_id=conversation_id,
            claim=None,
        )
    if stream and idempotency_key is not None:
        running = await live.turn_for_key(user_id, idempotency_key)
        if running is not None:  # a retry of a running streamed turn: follow it, do not rerun
            await live.owned(running, user_id)
            return sse_response(
                follow_turn(live, running, 0),
                headers={"X-Turn-Id": str(running), "Idempotent-Replayed": "true"},
            )
    if idempotency_key is None:
        async with turn_slot(runtime, user_id):
            result = await chat.turn(
                user_id,
                message=message,
                agent_id=agent_id,
                conversation_id=conversation_id,
                request_id=current_request_id(),
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
        if stream:
            return sse_response(
                _frames(_replayed_events(claimed)), headers={"Idempotent-Replayed": "true"}
            )
        return _stored(claimed, replayed=True)
    if stream:
        return await _start_stream(
            runtime,
            live,
            user_id,
            message=message,
            agent_id=agent_id,
            conversation_id=conversation_id,
            claim=claimed,
        )
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
                request_id=current_request_id(),
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
