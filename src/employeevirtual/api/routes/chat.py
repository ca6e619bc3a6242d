from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Annotated
from uuid import UUID

from fastapi import Body, Header, Query, Request
from fastapi.responses import Response

from employeevirtual.api.deps import require_active, runtime_of
from employeevirtual.api.limits import ChatUserId
from employeevirtual.api.request_id import current_request_id
from employeevirtual.api.routing import Router
from employeevirtual.api.schemas import ChatIn, ChatOut
from employeevirtual.api.sse import HEARTBEAT, encode, sse_response, wants_sse
from employeevirtual.chat.idempotency import IdempotencyClaim, StoredResponse
from employeevirtual.chat.live import LiveTurns, TurnStarted, replayed_events
from employeevirtual.chat.responses import turn_response
from employeevirtual.chat.turn import TurnOutcome
from employeevirtual.errors import InvalidInput
from employeevirtual.streaming.events import TurnEvent

# the chat rate limit is the route's ChatUserId (one dependency, not ChatRateLimit + the user id)
router = Router(prefix="/api/chat", tags=["chat"])


def _respond(answer: StoredResponse, headers: Mapping[str, str] | None = None) -> Response:
    return Response(
        answer.body, status_code=answer.status, media_type="application/json", headers=headers
    )


def answer(outcome: TurnOutcome, response: Response, *, keyed: bool = False) -> Response:
    """A turn's outcome as its HTTP answer; a 200 without a key carries the headers the route's
    dependencies set on ``response`` (the chat rate limit's)."""
    answered = turn_response(outcome)
    return _respond(answered, response.headers if not keyed and answered.status == 200 else None)


def started(turn: TurnStarted, live: LiveTurns) -> Response:
    """A live turn's events as the answer (SSE)."""
    return sse_response(
        follow_turn(live, turn.turn_id, 0),
        headers={"X-Turn-Id": str(turn.turn_id), "X-Conversation-Id": str(turn.conversation_id)},
    )


async def follow_turn(live: LiveTurns, turn_id: UUID, after: int) -> AsyncIterator[bytes]:
    """The turn's events as SSE frames, with a comment heartbeat while nothing happens. A
    client that goes away only stops this generator: the turn goes on."""
    async for batch in live.events(turn_id, after):
        yield HEARTBEAT if batch is None else b"".join(encode(e) for e in batch)


async def claim_or_replay(
    live: LiveTurns,
    user_id: UUID,
    key: str,
    claim: Callable[[], Awaitable[IdempotencyClaim | StoredResponse]],
    *,
    stream: bool,
) -> IdempotencyClaim | Response:
    """An Idempotency-Key's answer before any work: a retry of a running streamed turn
    follows its events (it is not run again), a retry after the end replays the stored answer
    (as SSE when asked for SSE, as JSON otherwise); else the claim to run under."""
    running = await live.turn_for_key(user_id, key) if stream else None
    if running is not None:
        await live.owned(running, user_id)
        return sse_response(
            follow_turn(live, running, 0),
            headers={"X-Turn-Id": str(running), "Idempotent-Replayed": "true"},
        )
    claimed = await claim()
    if isinstance(claimed, StoredResponse):
        replayed = {"Idempotent-Replayed": "true"}
        if stream:
            return sse_response(_frames(replayed_events(claimed)), headers=replayed)
        return _respond(claimed, replayed)
    return claimed


async def _frames(events: list[TurnEvent]) -> AsyncIterator[bytes]:
    for event in events:
        yield encode(event)


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
    user_id: ChatUserId,
    http_request: Request,
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
    accept: Annotated[
        str | None, Header(description="text/event-stream: stream the turn as SSE")
    ] = None,
) -> Response:
    """One turn: the seed's ``POST /api/chat/agent?message=...&agent_id=...``, or a JSON body."""
    runtime = runtime_of(http_request)  # not a dependency: each one costs a walk every request
    chat, live = runtime.chat, runtime.live
    if idempotency_key is not None:
        # the user check comes first: a key's replay or its 422 must not answer a deactivated
        # user (without a key, the turn's own single read checks the user before anything)
        await require_active(runtime, user_id)
    if body is not None:
        if message is not None or agent_id is not None or conversation_id is not None:
            raise InvalidInput("send the fields either as query parameters or as a JSON body")
        message, agent_id, conversation_id = body.message, body.agent_id, body.conversation_id
    request = chat.request(
        message,
        agent_id=agent_id,
        conversation_id=conversation_id,
        request_id=current_request_id(),
    )
    stream = wants_sse(accept)
    claim: IdempotencyClaim | None = None
    if idempotency_key is not None:
        keyed = await claim_or_replay(
            live,
            user_id,
            idempotency_key,
            lambda: chat.claim(user_id, request, idempotency_key),
            stream=stream,
        )
        if isinstance(keyed, Response):
            return keyed
        claim = keyed
    if stream:
        return started(await live.start(user_id, request, claim=claim), live)
    return answer(await chat.turn(user_id, request, claim=claim), response, keyed=claim is not None)
