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
import logging
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from employeevirtual.agents.runner import AgentFailure, RunOutcome
from employeevirtual.chat.idempotency import IdempotencyClaim, IdempotencyKeys
from employeevirtual.chat.service import AgentRunFailed, ChatService, OpenedTurn, TurnResult
from employeevirtual.errors import Conflict, NotFound
from employeevirtual.stores.records import MessageRecord
from employeevirtual.streaming.events import TurnEvent
from employeevirtual.streaming.log import TurnInfo, TurnLog, follow

__all__ = ["LiveTurns", "TurnStarted"]

log = logging.getLogger(__name__)

# how the route turns a committed result (or failure) into the ``done``/``error`` payloads
Render = Callable[[TurnResult | AgentRunFailed], TurnEvent]


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
        keys: IdempotencyKeys,
        *,
        heartbeat_seconds: float,
    ) -> None:
        self.chat = chat
        self.log = turn_log
        self.keys = keys
        self.heartbeat = heartbeat_seconds
        self._running: dict[UUID, _Running] = {}
        turn_log.on_cancel(self._cancel_local)

    @property
    def running(self) -> int:
        return len(self._running)

    # -- starting -----------------------------------------------------------------------------

    async def start(
        self,
        user_id: UUID,
        *,
        message: str,
        agent_id: UUID | None,
        conversation_id: UUID | None,
        render: Render,
        cleanup: AsyncExitStack,
        idempotency: IdempotencyClaim | None = None,
        context: Sequence[MessageRecord] = (),
        request_id: str | None = None,
    ) -> TurnStarted:
        """Commit the user's message, emit ``turn`` and run the agent in the background.
        Errors before that (404, 409, 422, 503) raise here, as HTTP errors; ``cleanup`` (the
        concurrency slot) is closed when the turn ends."""
        opened = await self.chat.open_turn(
            user_id,
            message=message,
            agent_id=agent_id,
            conversation_id=conversation_id,
            context=context,
            request_id=request_id,
        )
        return await self.start_opened(
            user_id, opened, render=render, cleanup=cleanup, idempotency=idempotency
        )

    async def start_opened(
        self,
        user_id: UUID,
        opened: OpenedTurn,
        *,
        render: Render,
        cleanup: AsyncExitStack,
        idempotency: IdempotencyClaim | None = None,
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
        running = _Running(turn_id, user_id)
        self._running[turn_id] = running
        if idempotency is not None:
            await self.log.bind_key(user_id, idempotency.key, turn_id)
        running.task = asyncio.create_task(
            self._run(running, opened, render, cleanup, idempotency), name=f"turn-{turn_id}"
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
        render: Render,
        cleanup: AsyncExitStack,
        idempotency: IdempotencyClaim | None,
    ) -> None:
        turn_id = running.turn_id
        outcome: RunOutcome | None = None
        failure: AgentFailure | None = None
        extra: dict[str, Any] | None = None
        try:
            runner = self.chat.runner

            async def emit(event: TurnEvent) -> None:
                await self._emit(running, event)

            running.run = asyncio.create_task(
                runner.run(
                    opened.agent,
                    opened.user_message.content,
                    opened.model_history,
                    on_event=emit,
                    knowledge=self.chat.knowledge_for(opened.conversation.user_id, opened.agent),
                )
            )
            if running.cancel_requested:
                running.run.cancel()
            try:
                outcome = await running.run
            except AgentFailure as exc:
                failure = exc
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    raise  # the server itself is going down: drain() handles it
                outcome = RunOutcome(
                    output="".join(running.deltas),
                    model_name=opened.agent.model,
                    input_tokens=0,
                    output_tokens=0,
                    cost=None,
                    execution_time=0.0,
                    tool_calls=tuple(running.tools.values()),
                )
                extra = {"cancelled": True}
            result: TurnResult | AgentRunFailed
            try:
                result = await self.chat.close_turn(
                    opened,
                    outcome=outcome,
                    failure=failure,
                    idempotency=idempotency,
                    extra_metadata=extra,
                )
            except AgentRunFailed as exc:
                result = exc
            await self.log.append(turn_id, render(result))
        except Exception as exc:
            log.exception("live turn %s failed before its commit", turn_id)
            if idempotency is not None:
                # a failed COMMIT too (the response was rendered inside the transaction); a key
                # that did commit is complete, and release leaves it alone
                await self.keys.release(idempotency)
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
        return follow(self.log, turn_id, after, heartbeat=self.heartbeat)

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
