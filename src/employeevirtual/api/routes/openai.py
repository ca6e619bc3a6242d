"""An OpenAI-compatible door: ``GET /v1/models`` and ``POST /v1/chat/completions``.

Existing clients (the ``openai`` SDKs, Open WebUI, LibreChat, LangChain, curl) use our agents
with a base URL and a key: a model id is an agent's id. Every call is a real turn, with the same
rate and concurrency limits, Idempotency-Key, stores, analytics and audit as
``/api/chat/agent``. Errors use OpenAI's JSON shape (see ``api/errors.py``).

Which conversation a call continues: ``X-Conversation-Id`` or ``metadata.conversation_id``;
otherwise the caller's conversation with that agent whose stored messages equal the request's
earlier messages (a client resending the whole history maps onto one stored conversation);
otherwise a new one, given the request's earlier messages as context. The answer carries
``X-Conversation-Id``.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import Header
from fastapi.responses import JSONResponse, Response

from employeevirtual.api.deps import (
    AgentsDep,
    ChatDep,
    CurrentUser,
    LiveDep,
    SettingsDep,
)
from employeevirtual.api.limits import ChatRateLimit
from employeevirtual.api.openai_schemas import (
    ChatCompletionIn,
    completion,
    completion_chunk,
    error_body,
    openai_error,
    usage_of,
)
from employeevirtual.api.request_id import current_request_id
from employeevirtual.api.routing import Router
from employeevirtual.api.sse import HEARTBEAT, sse_response
from employeevirtual.chat.idempotency import IdempotencyClaim, StoredResponse, fingerprint
from employeevirtual.chat.live import LiveTurns
from employeevirtual.chat.responses import chat_out
from employeevirtual.chat.turn import TurnFailed
from employeevirtual.errors import InvalidInput, NotFound
from employeevirtual.stores.records import AgentRecord, MessageRecord, MessageType

router = Router(prefix="/v1", tags=["openai-compatible"])

_ROLES: dict[str, MessageType] = {"user": "user", "assistant": "agent"}


@router.get("/models")
async def list_models(
    user: CurrentUser, agents: AgentsDep, settings: SettingsDep
) -> dict[str, Any]:
    """The agents the caller may use (their own and others' shared ones, newest first, at most
    ``EV_PAGE_LIMIT_MAX`` of each); a model id is the agent's id."""
    mine, _ = await agents.page(user, scope="mine", limit=settings.page_limit_max)
    shared, _ = await agents.page(user, scope="shared", limit=settings.page_limit_max)
    return {
        "object": "list",
        "data": [
            {
                "id": str(a.id),
                "object": "model",
                "created": int(a.created_at.timestamp()),
                "owned_by": "employeevirtual",
                "name": a.name,
                "description": a.description,
            }
            for a in (*mine, *shared)
        ],
    }


def _data(payload: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(payload, separators=(',', ':'), default=str)}\n\n".encode()


_DONE = b"data: [DONE]\n\n"


async def _chunks(
    live: LiveTurns, turn_id: UUID, *, model: str, include_usage: bool
) -> AsyncIterator[bytes]:
    """A live turn as OpenAI chunks. Tool calls are the agent's own (already executed), so they
    are not sent as OpenAI ``tool_calls`` (a client would try to run them)."""
    completion_id = f"chatcmpl-{turn_id}"
    yield _data(completion_chunk(completion_id, model=model, delta={"role": "assistant"}))
    async for batch in live.events(turn_id, 0):
        if batch is None:
            yield HEARTBEAT
            continue
        out = []
        for event in batch:
            if event.kind == "delta":
                delta = {"content": event.data["delta"]}
                out.append(_data(completion_chunk(completion_id, model=model, delta=delta)))
            elif event.kind == "done":
                out.append(
                    _data(completion_chunk(completion_id, model=model, finish_reason="stop"))
                )
                if include_usage:
                    usage = usage_of(event.data)
                    out.append(_data(completion_chunk(completion_id, model=model, usage=usage)))
            elif event.kind == "error":
                status, detail = int(event.data["status"]), event.data["detail"]
                out.append(_data(error_body(status, detail, code=event.data["kind"])))
        if out:
            yield b"".join(out)
    yield _DONE


async def _replayed_chunks(
    stored: StoredResponse, *, model: str, include_usage: bool
) -> AsyncIterator[bytes]:
    body = json.loads(stored.body)
    if stored.status != 200:
        yield _data(error_body(stored.status, body.get("detail", "the turn failed")))
        yield _DONE
        return
    completion_id = f"chatcmpl-{body['agent_message']['id']}"
    content = body["agent_message"]["content"]
    delta = {"role": "assistant", "content": content}
    yield _data(completion_chunk(completion_id, model=model, delta=delta))
    yield _data(completion_chunk(completion_id, model=model, finish_reason="stop"))
    if include_usage:
        yield _data(completion_chunk(completion_id, model=model, usage=usage_of(body)))
    yield _DONE


def _stored_completion(stored: StoredResponse, *, model: str, replayed: bool) -> Response:
    body = json.loads(stored.body)
    headers = {"X-Conversation-Id": str(body.get("conversation_id", ""))}
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    if stored.status != 200:
        return openai_error(
            stored.status,
            body.get("detail", "the turn failed"),
            code="agent_failed",
            headers=headers,
        )
    return JSONResponse(completion(body, model=model), headers=headers)


async def _agent(agents: AgentsDep, user: CurrentUser, model: str) -> AgentRecord:
    try:
        return await agents.get(user, UUID(model))
    except (ValueError, NotFound):
        raise NotFound(
            f"the model {model!r} does not exist or you do not have access to it; "
            "GET /v1/models lists the agents you may use",
            code="model_not_found",
            param="model",
        ) from None


@router.post(
    "/chat/completions",
    dependencies=[ChatRateLimit],
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def chat_completions(
    body: ChatCompletionIn,
    user: CurrentUser,
    agents: AgentsDep,
    chat: ChatDep,
    live: LiveDep,
    settings: SettingsDep,
    x_conversation_id: Annotated[
        str | None, Header(alias="X-Conversation-Id", description="continue this conversation")
    ] = None,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> Any:
    """One turn with the agent named by ``model``; ``stream`` true answers with chunks."""
    agent = await _agent(agents, user, body.model)
    last = body.messages[-1]
    message = last.text()
    if last.role != "user" or not message.strip():
        raise InvalidInput("the last message must be the user's, with text", param="messages")
    if len(message) > settings.max_message_chars:
        raise InvalidInput(
            f"the last message is {len(message)} characters; the limit is "
            f"{settings.max_message_chars}",
            param="messages",
        )
    asked = x_conversation_id or (body.metadata or {}).get("conversation_id")
    conversation_id: UUID | None = None
    if asked:
        try:
            conversation_id = UUID(asked)
        except ValueError:
            raise InvalidInput(f"conversation id {asked!r} is not a UUID") from None
    earlier = [(m.role, m.text()) for m in body.messages[:-1] if m.role in _ROLES]
    dialogue = [(_ROLES[role], text) for role, text in earlier]
    context: list[MessageRecord] = []
    if conversation_id is None and dialogue:
        conversation_id = await chat.find_by_dialogue(user.id, agent.id, dialogue)
        if conversation_id is None:
            now = datetime.now(UTC)
            context = [
                MessageRecord(uuid.uuid4(), uuid.uuid4(), 0, user.id, None, text, kind, {}, now)
                for kind, text in dialogue
            ]
    include_usage = bool(body.stream_options and body.stream_options.include_usage)
    model = str(agent.id)
    request = chat.request(
        message,
        agent_id=agent.id,
        conversation_id=conversation_id,
        context=context,
        request_id=current_request_id(),
    )

    claim: IdempotencyClaim | None = None
    if idempotency_key is not None:
        if body.stream:
            running = await live.turn_for_key(user.id, idempotency_key)
            if running is not None:
                return sse_response(
                    _chunks(live, running, model=model, include_usage=include_usage),
                    headers={"Idempotent-Replayed": "true"},
                )
        claimed = await chat.claim(
            user.id,
            request,
            idempotency_key,
            request_fingerprint=fingerprint(
                route="POST /v1/chat/completions",
                model=model,
                messages=[(m.role, m.text()) for m in body.messages],
                conversation_id=conversation_id,
            ),
        )
        if isinstance(claimed, StoredResponse):
            if body.stream:
                return sse_response(
                    _replayed_chunks(claimed, model=model, include_usage=include_usage),
                    headers={"Idempotent-Replayed": "true"},
                )
            return _stored_completion(claimed, model=model, replayed=True)
        claim = claimed

    if body.stream:
        started = await live.start(user.id, request, claim=claim)
        return sse_response(
            _chunks(live, started.turn_id, model=model, include_usage=include_usage),
            headers={
                "X-Conversation-Id": str(started.conversation_id),
                "X-Turn-Id": str(started.turn_id),
            },
        )

    outcome = await chat.turn(user.id, request, claim=claim)
    headers = {"X-Conversation-Id": str(outcome.conversation.id)}
    if isinstance(outcome, TurnFailed):
        return openai_error(
            outcome.status_code, outcome.message, code=outcome.kind, headers=headers
        )
    answer = chat_out(outcome).model_dump(mode="json")
    return JSONResponse(completion(answer, model=model), headers=headers)
