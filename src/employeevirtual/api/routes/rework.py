"""Answer again: regenerate the last answer, or edit the last user message and re-answer.
Both stream (``Accept: text/event-stream``) like ``POST /api/chat/agent``."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any
from uuid import UUID

from fastapi import Depends, Header, Response

from employeevirtual.api.deps import ChatDep, CurrentUser, LiveDep
from employeevirtual.api.limits import ChatRateLimit
from employeevirtual.api.routes.chat import answer, claim_or_replay, started
from employeevirtual.api.routing import Router
from employeevirtual.api.schemas import ChatOut, MessageEdit
from employeevirtual.api.sse import wants_sse
from employeevirtual.chat.idempotency import IdempotencyClaim, fingerprint
from employeevirtual.chat.rework import Edit, Regenerate, Rework

router = Router(prefix="/api/conversations", tags=["chat"], dependencies=[ChatRateLimit])

_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {"text/event-stream": {}},
        "description": "the JSON answer; with `Accept: text/event-stream`, the turn's events",
    },
    409: {"description": "a request with the same Idempotency-Key is still running"},
    422: {"description": "invalid input, or an Idempotency-Key reused for another request"},
    502: {"description": "the model provider failed (recorded)"},
    504: {"description": "the agent timed out (recorded)"},
}
Accept = Annotated[str | None, Header(description="text/event-stream: stream the answer")]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        description="retry safely: the same key replays the first response (kept 24 h)",
    ),
]


class _AnswerAgain:
    """What both routes take besides the rework itself, and their shared body: the
    Idempotency-Key's claim, or the answer that replays or follows an earlier request with it
    (the chat route's rules; the route and the rework are what make two requests the same),
    then the turn, streamed or answered."""

    def __init__(
        self,
        user: CurrentUser,
        chat: ChatDep,
        live: LiveDep,
        response: Response,
        accept: Accept = None,
        idempotency_key: IdempotencyKey = None,
    ) -> None:
        self.user_id = user.id
        self.chat = chat
        self.live = live
        self.response = response
        self.stream = wants_sse(accept)
        self.key = idempotency_key

    async def __call__(self, rework: Rework) -> Response:
        chat, live, user_id, key = self.chat, self.live, self.user_id, self.key
        claim: IdempotencyClaim | None = None
        if key is not None:
            route = "edit" if isinstance(rework, Edit) else "regenerate"
            digest = fingerprint(route=route, **asdict(rework))
            keyed = await claim_or_replay(
                live,
                user_id,
                key,
                lambda: chat.keys.claim(user_id=user_id, key=key, request_fingerprint=digest),
                stream=self.stream,
            )
            if isinstance(keyed, Response):
                return keyed
            claim = keyed
        if self.stream:
            return started(await live.rework(user_id, rework, claim=claim), live)
        outcome = await chat.rework(user_id, rework, claim=claim)
        return answer(outcome, self.response, keyed=claim is not None)


AnswerAgain = Annotated[_AnswerAgain, Depends()]


@router.post("/{conversation_id}/regenerate", response_model=ChatOut, responses=_RESPONSES)
async def regenerate(conversation_id: UUID, again: AnswerAgain) -> Response:
    """Runs the agent again on the last user message. The new answer is appended; the one it
    replaces is kept, marked superseded, and left out of the model's context."""
    return await again(Regenerate(conversation_id))


@router.patch(
    "/{conversation_id}/messages/{message_id}", response_model=ChatOut, responses=_RESPONSES
)
async def edit_message(
    conversation_id: UUID, message_id: UUID, body: MessageEdit, again: AnswerAgain
) -> Response:
    """Edits the last user message (``is_edited``/``edited_at``; the original text stays in the
    audit trail) and answers it again. Append-only: the edited text is a new message that
    supersedes the original, and the new answer supersedes the original's answers."""
    return await again(Edit(conversation_id, message_id, body.content))
