"""Memory (issue 18): what an agent remembers past its context window and across conversations.

For a turn: ``prepare`` reads the scope's memories and the conversation's summary in one
statement and hands the runner the instructions and the ``remember``/``forget`` tools;
``apply`` writes the tool calls the model made into SQL inside the turn's own transaction;
``committed`` starts a summary update in the background when one is due. For the person:
their memories, paged, edited, deleted (``GET/PATCH/DELETE /api/memories``). MongoDB's copies
follow through ``sync.memory`` (directly after an API change, else by the relay).
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from employeevirtual.errors import InvalidInput, NotFound
from employeevirtual.memory.recall import Recall
from employeevirtual.memory.summaries import SummaryWorker
from employeevirtual.memory.tools import FORGET_TOOL, REMEMBER_TOOL, MemoryTurn, normalized
from employeevirtual.stores.records import AgentRecord, ConversationRecord, MessageRecord
from employeevirtual.stores.sql.engine import WriteConnection, read_connection, write_transaction
from employeevirtual.stores.sql.memory import (
    MemoryReader,
    MemoryRecord,
    MemoryRepository,
    MemoryScope,
)
from employeevirtual.sync.memory import MemorySync

__all__ = ["MemoryLimits", "MemoryService"]

log = logging.getLogger(__name__)


class MemoryLimits:
    def __init__(self, *, per_scope: int, chars: int, recall: int, calls_per_turn: int) -> None:
        self.per_scope = per_scope
        self.chars = chars
        self.recall = recall
        self.calls_per_turn = calls_per_turn


def _accepted(call: dict[str, Any]) -> tuple[str, UUID] | None:
    """(status, memory id) of the tool's answer on the record (JSON), when it has both."""
    try:
        result = json.loads(str(call.get("result") or ""))
        return str(result["status"]), UUID(str(result["id"]))
    except (ValueError, TypeError, KeyError):
        return None


class MemoryService:
    def __init__(
        self,
        *,
        engine: AsyncEngine,
        sync: MemorySync,
        worker: SummaryWorker,
        recall: Recall,
        limits: MemoryLimits,
    ) -> None:
        self.engine = engine
        self.sync = sync
        self.worker = worker
        self.recall = recall
        self.limits = limits

    # -- a turn -------------------------------------------------------------------------------

    async def prepare(
        self,
        user_id: UUID,
        agent: AgentRecord,
        conversation: ConversationRecord | None,
        message: str,
    ) -> MemoryTurn | None:
        """The turn's memory, or None when the agent keeps none. A store failure here costs
        the turn its memory, never the turn."""
        if not agent.memory_enabled:
            return None
        scope = MemoryScope(
            user_id=user_id,
            agent_id=agent.id,
            conversation_id=conversation.id if conversation else None,
            shared=agent.memory_shared,
        )
        try:
            async with read_connection(self.engine) as conn:
                found = await MemoryReader(conn).for_turn(
                    scope, summary=conversation is not None and conversation.message_count > 0
                )
        except SQLAlchemyError as exc:
            log.warning("turn without memory: reading it failed (%s)", type(exc).__name__)
            return None
        if conversation is not None:
            self.worker.note(conversation.id, found.summary.covered_seq if found.summary else 0)
        given = await self.recall.select(found.memories, message, limit=self.limits.recall)
        return MemoryTurn(
            scope=scope,
            memories=found.memories,
            given=given,
            summary=found.summary,
            max_count=self.limits.per_scope,
            max_chars=self.limits.chars,
            max_calls=self.limits.calls_per_turn,
        )

    def writes(self, reply: MessageRecord) -> bool:
        """Whether ``apply`` may write anything for ``reply``."""
        return bool(_memory_calls(reply))

    async def apply(
        self,
        conn: WriteConnection,
        agent: AgentRecord,
        user_id: UUID,
        reply: MessageRecord,
    ) -> int:
        """The ``remember``/``forget`` calls the reply records, written in the turn's own
        transaction (``reply`` is committed with them), before its messages: a conversation's
        delete locks its memories before its row, and so does the turn. Returns how many were
        applied."""
        calls = _memory_calls(reply)
        if not calls:
            return 0
        scope = MemoryScope(
            user_id=user_id,
            agent_id=agent.id,
            conversation_id=reply.conversation_id,
            shared=agent.memory_shared,
        )
        repo, now, applied = MemoryRepository(conn), reply.created_at, 0
        forgets = [
            accepted[1]
            for call in calls
            if call["name"] == FORGET_TOOL
            and (accepted := _accepted(call)) is not None
            and accepted[0] == "forgotten"
        ]
        if len(forgets) > 1:  # in id order first, as a delete takes them (``lock``)
            await repo.lock(forgets)
        for call in calls:
            accepted = _accepted(call)
            if accepted is None:
                continue
            status, memory_id = accepted
            if status == "saved" and call["name"] == REMEMBER_TOOL:
                text = normalized(str((call.get("args") or {}).get("fact") or ""))
                if not text or len(text) > self.limits.chars:
                    continue
                if await repo.count(scope) >= self.limits.per_scope:
                    continue  # a concurrent turn filled the scope first
                await repo.add(
                    memory_id=memory_id,
                    scope=scope,
                    content=text,
                    source_message_id=reply.id,
                    source_conversation_id=reply.conversation_id,
                    source_tool_call=str(call.get("id"))[:100],
                    now=now,
                )
                applied += 1
            elif status == "forgotten" and call["name"] == FORGET_TOOL:
                forgotten = await repo.forget(memory_id, user_id=user_id, now=now)
                applied += forgotten is not None
        return applied

    def committed(self, agent: AgentRecord, conversation: ConversationRecord) -> None:
        """After a turn's commit: a summary update in the background when one is due."""
        if agent.memory_enabled:
            self.worker.committed(conversation.id, conversation.message_count, agent.model)

    # -- the person's own -----------------------------------------------------------------------

    async def page(
        self,
        user_id: UUID,
        *,
        agent_id: UUID | None,
        limit: int,
        after: tuple[datetime, UUID] | None,
    ) -> tuple[list[MemoryRecord], bool]:
        async with read_connection(self.engine) as conn:
            rows = await MemoryReader(conn).page(
                user_id, agent_id=agent_id, limit=limit + 1, after=after
            )
        return rows[:limit], len(rows) > limit

    async def change(self, user_id: UUID, memory_id: UUID, *, content: str) -> MemoryRecord:
        text = normalized(content)
        if not text:
            raise InvalidInput("content cannot be empty or only whitespace")
        if len(text) > self.limits.chars:
            raise InvalidInput(
                f"content is {len(text)} characters; a memory holds at most {self.limits.chars}"
            )
        async with write_transaction(self.engine) as conn:
            changed = await MemoryRepository(conn).change(
                memory_id, user_id=user_id, content=text, now=datetime.now(UTC)
            )
        if changed is None:
            raise NotFound(f"memory {memory_id} not found")
        await self.sync.try_write(changed)
        return changed

    async def delete(self, user_id: UUID, memory_id: UUID) -> None:
        async with write_transaction(self.engine) as conn:
            version = await MemoryRepository(conn).forget(
                memory_id, user_id=user_id, now=datetime.now(UTC)
            )
        if version is None:
            raise NotFound(f"memory {memory_id} not found")
        await self._copy_deletions([memory_id])

    async def delete_all(self, user_id: UUID, *, agent_id: UUID | None) -> int:
        """Every memory of the person (of one agent), a page at a time."""
        deleted: list[UUID] = []
        while True:
            async with read_connection(self.engine) as conn:
                page = await MemoryReader(conn).page(
                    user_id, agent_id=agent_id, limit=500, after=None
                )
            if not page:
                break
            now = datetime.now(UTC)
            async with write_transaction(self.engine) as conn:
                repo = MemoryRepository(conn)
                # in id order, as a conversation's delete takes its memories (not newest first)
                await repo.lock([memory.id for memory in page])
                for memory in page:
                    if await repo.forget(memory.id, user_id=user_id, now=now) is not None:
                        deleted.append(memory.id)
        await self._copy_deletions(deleted)
        return len(deleted)

    async def _copy_deletions(self, memory_ids: list[UUID]) -> None:
        """MongoDB's copies removed now (the relay retries what fails)."""
        for start in range(0, len(memory_ids), 500):
            async with read_connection(self.engine) as conn:
                tombstones = await MemoryReader(conn).by_ids(memory_ids[start : start + 500])
            for memory in tombstones:
                if not await self.sync.try_write(memory):
                    return


def _memory_calls(reply: MessageRecord) -> list[dict[str, Any]]:
    """The ``remember``/``forget`` calls an agent's reply records."""
    if reply.message_type != "agent":
        return []
    return [
        c
        for c in reply.metadata.get("tool_calls") or []
        if isinstance(c, dict) and c.get("name") in (REMEMBER_TOOL, FORGET_TOOL)
    ]
