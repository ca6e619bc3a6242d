"""Memory's part of keeping the stores in step (issue 18): SQL is the truth for memories and
conversation summaries; MongoDB holds copies (``user_memories``, and the current summary in
``context.conversation_state``).

The relay carries what MongoDB has not got (``carry``: a summary version not marked synced, a
memory whose ``synced_version`` is behind, a forgotten memory's tombstone whose copy must go).
The reconciler compares the copies with SQL and repairs them (``reconcile``), and rebuilds a
conversation document with its summary (``conversation_context``)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from pymongo.errors import PyMongoError
from sqlalchemy.ext.asyncio import AsyncEngine

from employeevirtual.stores.mongo.memory import MemoryDocuments, conversation_state
from employeevirtual.stores.sql.engine import Connection, read_connection, write_transaction
from employeevirtual.stores.sql.memory import MemoryReader, MemoryRecord, MemoryRepository

__all__ = ["MemoryDrift", "MemorySync", "conversation_context"]

log = logging.getLogger(__name__)


async def conversation_context(conn: Connection, conversation_id: UUID) -> dict[str, Any]:
    """What SQL keeps of a conversation document's ``context``: its current summary."""
    summary = await MemoryReader(conn).current_summary(conversation_id)
    return {} if summary is None else {"conversation_state": conversation_state(summary)}


class MemoryDrift:
    """A difference the memory comparison found (kind: memory_missing, memory_stale,
    memory_extra), in the reconciler's report shape."""

    __slots__ = ("detail", "kind", "memory_id")

    def __init__(self, memory_id: str, kind: str, detail: str) -> None:
        self.memory_id, self.kind, self.detail = memory_id, kind, detail


class MemorySync:
    def __init__(self, engine: AsyncEngine, copies: MemoryDocuments, *, batch: int = 200) -> None:
        self.engine = engine
        self.copies = copies
        self.batch = batch

    # -- the relay's part ---------------------------------------------------------------------

    async def carry(self, *, older_than: datetime | None = None) -> int:
        """Write what MongoDB has not got; returns how many rows were carried. Summary versions
        written since ``older_than`` are left to the worker that wrote them (its copy and its
        batched ack, ``SyncAcks``, may still be on their way)."""
        return await self.carry_summaries(older_than=older_than) + await self.carry_memories()

    async def carry_summaries(self, *, older_than: datetime | None = None) -> int:
        async with read_connection(self.engine) as conn:
            owed = await MemoryReader(conn).unsynced_summaries(
                limit=self.batch, older_than=older_than
            )
        newest: dict[UUID, Any] = {}
        for summary in owed:  # the newest version carries the older ones
            if summary.version > getattr(newest.get(summary.conversation_id), "version", 0):
                newest[summary.conversation_id] = summary
        for summary in newest.values():
            # no document yet: the relay's rebuild of the conversation carries the summary
            await self.copies.set_state(summary)
            async with write_transaction(self.engine) as conn:
                await MemoryRepository(conn).mark_summary_synced(
                    summary.conversation_id, summary.version, datetime.now(UTC)
                )
        return len(owed)

    async def carry_memories(self) -> int:
        async with read_connection(self.engine) as conn:
            owed = await MemoryReader(conn).unsynced_memories(limit=self.batch)
        for memory in owed:
            await self.write(memory)
        return len(owed)

    async def write(self, memory: MemoryRecord) -> None:
        """One memory's version to MongoDB, then recorded as synced (a forgotten one: its copy
        deleted, then its tombstone)."""
        if memory.deleted_at is not None:
            await self.copies.delete_memory(memory.id)
            async with write_transaction(self.engine) as conn:
                await MemoryRepository(conn).drop_tombstone(memory.id, memory.version)
            return
        await self.copies.put_memory(memory)
        await self._record_copied(memory)

    async def _record_copied(self, memory: MemoryRecord) -> None:
        """After a memory's copy was written: recorded as synced, or, when SQL no longer holds
        that version, taken back if it is no longer live (forgotten, or erased with its owner,
        since it was read). A forget and an erasure change SQL before they delete the copy
        (``MemorySource.erase`` runs before the ``user_memories`` source): either their delete
        comes after our write, or these statements, begun after the write, see their commit. A
        newer live version keeps the copy: it is unsynced, so its own write or the relay's
        replaces it."""
        async with write_transaction(self.engine) as conn:
            if await MemoryRepository(conn).mark_synced(memory.id, memory.version):
                return
        async with read_connection(self.engine) as conn:
            held = await MemoryReader(conn).by_ids([memory.id])
        if not any(m.deleted_at is None for m in held):
            await self.copies.delete_memory(memory.id)

    async def try_write(self, memory: MemoryRecord) -> bool:
        """``write``, a MongoDB failure left to the relay."""
        try:
            await self.write(memory)
        except PyMongoError as exc:
            log.warning("memory %s: MongoDB write failed (%s); left to the relay", memory.id, exc)
            return False
        return True

    # -- the reconciler's part ----------------------------------------------------------------

    async def reconcile(self, *, repair: bool, deep: bool) -> list[MemoryDrift]:
        """Memory documents against SQL's live memories: missing or stale ones written again,
        ones SQL no longer holds deleted. A quick round compares the counts first."""
        async with read_connection(self.engine) as conn:
            in_sql = await MemoryReader(conn).live_count()
        if not deep and in_sql == await self.copies.count():
            return []
        sql_versions: dict[str, int] = {}
        after: UUID | None = None
        while True:
            async with read_connection(self.engine) as conn:
                page = await MemoryReader(conn).live_versions(after=after, limit=1000)
            if not page:
                break
            after = page[-1][0]
            sql_versions.update({str(i): v for i, v in page})
        mongo_versions: dict[str, int] = {}
        cursor: str | None = None
        while True:
            docs = await self.copies.versions_after(cursor, 1000)
            if not docs:
                break
            cursor = docs[-1][0]
            mongo_versions.update(docs)
        drifts: list[MemoryDrift] = []
        stale: list[UUID] = []
        for mid, version in sql_versions.items():
            held = mongo_versions.get(mid)
            if held is None:
                drifts.append(MemoryDrift(mid, "memory_missing", "not in MongoDB"))
                stale.append(UUID(mid))
            elif held != version:
                drifts.append(MemoryDrift(mid, "memory_stale", f"version {held}!={version}"))
                stale.append(UUID(mid))
        extra = [mid for mid in mongo_versions if mid not in sql_versions]
        drifts.extend(MemoryDrift(mid, "memory_extra", "in MongoDB, not in SQL") for mid in extra)
        if repair and drifts:
            await self.copies.delete_memories(extra)
            for start in range(0, len(stale), 500):
                async with read_connection(self.engine) as conn:
                    records = await MemoryReader(conn).by_ids(stale[start : start + 500])
                for memory in records:
                    if memory.deleted_at is None:
                        await self.copies.put_memory(memory)
                        await self._record_copied(memory)
        return drifts
