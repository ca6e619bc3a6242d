"""Live (streamed) turns: started by a request, owned by the server, followed by any client.

A live turn runs as a background task, not as part of the request that started it
(invariant 9): a client that disconnects does not stop it; it finishes, commits and reaches
MongoDB exactly like a non-streamed turn. Its events go to the turn log, where the first client,
a reconnecting one (``Last-Event-ID``) or a client on another process (Redis) read them.

Cancelling stops the agent; the text streamed so far is committed once as the agent's message,
with ``cancelled: true`` in its metadata, and the stream ends with ``done``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from employeevirtual.agents.runner import AgentFailure, RunOutcome
from employeevirtual.chat.handoff import user_handoff
from employeevirtual.chat.idempotency import IdempotencyClaim, StoredResponse
from employeevirtual.chat.responses import chat_out, failure_body
from employeevirtual.chat.rework import Rework, open_rework
from employeevirtual.chat.service import ChatService
from employeevirtual.chat.turn import OpenedTurn, TurnFailed, TurnOutcome, TurnRequest
from employeevirtual.errors import Conflict, NotFound
from employeevirtual.stores.records import TurnUsage
from employeevirtual.streaming.events import TurnEvent
from employeevirtual.streaming.log import TurnInfo, TurnLog, follow

__all__ = ["LiveTurns", "TurnStarted", "replayed_events", "turn_event"]

log = logging.getLogger(__name__)


def turn_event(outcome: TurnOutcome) -> TurnEvent:
    """A live turn's last event: ``done`` with the non-streamed JSON body, or ``error``."""
    if isinstance(outcome, TurnFailed):
        data = {"status": outcome.status_code, "kind": outcome.kind, **failure_body(outcome)}
        return TurnEvent("error", data)
    return TurnEvent("done", chat_out(outcome).model_dump(mode="json"))


def replayed_events(response: StoredResponse) -> list[TurnEvent]:
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


@dataclass(frozen=True, slots=True)
class TurnStarted:
    turn_id: UUID
    conversation_id: UUID


@dataclass(slots=True)
class _Running:
    turn_id: UUID
    owner: UUID
    task: asyncio.Task[None] | None = None
    run: asyncio.Task[RunOutcome] | None = None
    cancel_requested: bool = False
    deltas: list[str] = field(default_factory=list)
    tools: dict[str, dict[str, Any]] = field(default_factory=dict)


class LiveTurns:
    def __init__(
        self,
        chat: ChatService,
        turn_log: TurnLog,
        *,
        heartbeat_seconds: float,
        frame_seconds: float = 0.0,
    ) -> None:
        """``frame_seconds``: how often a follower writes a turn's text (``log.follow``)."""
        self.chat = chat
        self.log = turn_log
        self.heartbeat = heartbeat_seconds
        self.frame = frame_seconds
        self._running: dict[UUID, _Running] = {}
        turn_log.on_cancel(self._cancel_local)

    @property
    def running(self) -> int:
        return len(self._running)

    # -- starting -----------------------------------------------------------------------------

    async def start(
        self, user_id: UUID, request: TurnRequest, *, claim: IdempotencyClaim | None = None
    ) -> TurnStarted:
        """Take a turn slot, commit the user's message, emit ``turn`` and run the agent in the
        background. Errors before that (404, 409, 422, 429, 503) raise here, releasing the slot
        and ``claim``; otherwise the slot is held until the turn ends."""
        return await self._begin(user_id, lambda: self.chat.open_turn(user_id, request), claim)

    async def rework(
        self, user_id: UUID, rework: Rework, *, claim: IdempotencyClaim | None = None
    ) -> TurnStarted:
        """``ChatService.rework``, streamed (an edit's text checked once the slot is held)."""
        return await self._begin(
            user_id, lambda: open_rework(self.chat, user_id, self.chat.checked(rework)), claim
        )

    async def _begin(
        self,
        user_id: UUID,
        opening: Callable[[], Awaitable[OpenedTurn]],
        claim: IdempotencyClaim | None,
    ) -> TurnStarted:
        cleanup = AsyncExitStack()
        try:
            await cleanup.enter_async_context(self.chat.slots.hold(user_id))
            return await self._start(user_id, await opening(), cleanup, claim)
        except BaseException:
            await cleanup.aclose()
            if claim is not None:
                await self.chat.keys.release(claim)
            raise

    async def _start(
        self,
        user_id: UUID,
        opened: OpenedTurn,
        cleanup: AsyncExitStack,
        idempotency: IdempotencyClaim | None,
    ) -> TurnStarted:
        """Emit ``turn`` for an opened turn (a new message, a regeneration, an edit) and run
        its agent in the background."""
        turn_id = uuid.uuid4()
        conversation = opened.conversation
        await self.log.open(turn_id, owner=user_id, conversation_id=conversation.id)
        user = opened.user_message
        await self.log.append(
            turn_id,
            TurnEvent(
                "turn",
                {
                    "turn_id": str(turn_id),
                    "conversation_id": str(conversation.id),
                    "user_message": {
                        "id": str(user.id),
                        "seq": user.seq,
                        "content": user.content,
                        "timestamp": user.created_at.isoformat(),
                    },
                },
            ),
        )
        moved = user_handoff(conversation, opened.agent)
        if moved is not None:  # committed with the reply, announced now
            await self.log.append(turn_id, TurnEvent("handoff", moved))
        running = _Running(turn_id, user_id)
        self._running[turn_id] = running
        if idempotency is not None:
            await self.log.bind_key(user_id, idempotency.key, turn_id)
        running.task = asyncio.create_task(
            self._run(running, opened, cleanup, idempotency), name=f"turn-{turn_id}"
        )
        return TurnStarted(turn_id, conversation.id)

    async def turn_for_key(self, user_id: UUID, key: str) -> UUID | None:
        """The running turn this Idempotency-Key started (on any process with Redis)."""
        return await self.log.key_turn(user_id, key)

    async def _emit(self, running: _Running, event: TurnEvent) -> None:
        if event.kind == "delta":
            running.deltas.append(event.data["delta"])
        elif event.kind == "tool_call":
            running.tools[event.data["id"]] = {**event.data, "result": None, "truncated": False}
        elif event.kind == "tool_result" and event.data["id"] in running.tools:
            running.tools[event.data["id"]].update(
                result=event.data["result"], truncated=event.data["truncated"]
            )
        await self.log.append(running.turn_id, event)

    async def _run(
        self,
        running: _Running,
        opened: OpenedTurn,
        cleanup: AsyncExitStack,
        idempotency: IdempotencyClaim | None,
    ) -> None:
        turn_id = running.turn_id
        run: RunOutcome | AgentFailure
        extra: dict[str, Any] | None = None
        try:

            async def emit(event: TurnEvent) -> None:
                await self._emit(running, event)

            running.run = asyncio.create_task(
                self.chat.runs.start(
                    opened.conversation.user_id,
                    opened.agent,
                    opened.user_message.content,
                    opened.model_history,
                    opened.conversation,
                    on_event=emit,
                )
            )
            if running.cancel_requested:
                running.run.cancel()
            try:
                run = await running.run
            except AgentFailure as exc:
                run = exc
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    raise  # the server itself is going down: drain() handles it
                run = RunOutcome(
                    output="".join(running.deltas),
                    usage=TurnUsage.measured(model=opened.agent.model, execution_time=0.0),
                    tool_calls=tuple(running.tools.values()),
                )
                extra = {"cancelled": True}
            outcome = await self.chat.close_turn(
                opened, run, claim=idempotency, extra_metadata=extra
            )
            await self.log.append(turn_id, turn_event(outcome))
        except Exception as exc:
            log.exception("live turn %s failed before its commit", turn_id)
            if idempotency is not None:
                # a failed COMMIT too (the response was rendered inside the transaction); a key
                # that did commit is complete, and release leaves it alone
                await self.chat.keys.release(idempotency)
            detail = getattr(exc, "message", None) or "the turn failed; see the server log"
            status = getattr(exc, "status_code", 503)
            await self.log.append(
                turn_id,
                TurnEvent(
                    "error",
                    {
                        "status": status,
                        "kind": "internal",
                        "detail": detail,
                        "conversation_id": str(opened.conversation.id),
                    },
                ),
            )
        finally:
            self._running.pop(turn_id, None)
            if idempotency is not None:
                with contextlib.suppress(Exception):
                    await self.log.bind_key(running.owner, idempotency.key, None)
            await cleanup.aclose()

    # -- following, cancelling ------------------------------------------------------------------

    async def owned(self, turn_id: UUID, user_id: UUID) -> TurnInfo:
        info = await self.log.info(turn_id)
        if info is None or info.owner != user_id:
            raise NotFound(f"turn {turn_id} not found (or its events are no longer kept)")
        return info

    def events(self, turn_id: UUID, after: int) -> AsyncIterator[list[TurnEvent] | None]:
        """Batches of events after ``after`` until ``done``/``error``; None for a heartbeat."""
        return follow(self.log, turn_id, after, heartbeat=self.heartbeat, frame=self.frame)

    async def cancel(self, turn_id: UUID, user_id: UUID) -> None:
        info = await self.owned(turn_id, user_id)
        if info.finished:
            raise Conflict(f"turn {turn_id} has already ended; there is nothing to cancel")
        await self.log.publish_cancel(turn_id)

    def _cancel_local(self, turn_id: UUID) -> None:
        running = self._running.get(turn_id)
        if running is None:
            return
        running.cancel_requested = True
        if running.run is not None:
            running.run.cancel()

    async def drain(self, grace_seconds: float) -> None:
        """At shutdown: let running turns finish for ``grace_seconds``, then cancel the rest
        (their partial answers are committed like any cancelled turn)."""
        tasks = [r.task for r in self._running.values() if r.task is not None]
        if not tasks:
            return
        _done, pending = await asyncio.wait(tasks, timeout=grace_seconds)
        for turn_id in list(self._running):
            self._cancel_local(turn_id)
        if pending:
            with contextlib.suppress(Exception):
                await asyncio.wait(pending, timeout=10.0)
