"""``empl.conversation_summaries`` (issue 18): a conversation's rolling summary, one row per
version. Never commits: the caller owns the transaction."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any
from uuid import UUID

from sqlalchemy import and_, bindparam, delete, func, insert, select, update

from employeevirtual.stores.sql.engine import Connection, WriteConnection
from employeevirtual.stores.sql.keyset import after_asc
from employeevirtual.stores.sql.rows import rowcount
from employeevirtual.stores.sql.tables import conversation_summaries, conversations

__all__ = [
    "SummaryReader",
    "SummaryRecord",
    "SummaryRepository",
    "SummaryState",
    "latest_version",
]


@dataclass(frozen=True, slots=True)
class SummaryRecord:
    conversation_id: UUID
    version: int
    user_id: UUID
    covered_seq: int  # the summary covers messages 1..covered_seq
    content: str
    model: str
    messages: int
    created_at: datetime
    synced_at: datetime | None = None


def _summary(row: Any) -> SummaryRecord:
    m = row._mapping
    return SummaryRecord(**{k: m[k] for k in SummaryRecord.__slots__})


def latest_version(conversation_id: Any) -> Any:
    s = conversation_summaries.c
    return select(func.max(s.version)).where(s.conversation_id == conversation_id).scalar_subquery()


@dataclass(frozen=True, slots=True)
class SummaryState:
    """What a summary pass starts from: the conversation's size and owner, its current summary."""

    message_count: int
    user_id: UUID
    current: SummaryRecord | None


# The statements of a summary pass, built once with bound parameters: building a statement and
# its cache key on every call cost more CPU than running it (a pass is ~5 of them).


@cache
def _state_query() -> Any:
    """The conversation row's count and owner with its current summary (outer join: none yet)."""
    c, s = conversations.c, conversation_summaries.c
    wanted = bindparam("cid", type_=c.id.type)
    current = and_(s.conversation_id == c.id, s.version == latest_version(wanted))
    return (
        select(c.message_count, c.user_id.label("owner_id"), *conversation_summaries.c)
        .select_from(conversations.outerjoin(conversation_summaries, current))
        .where(c.id == wanted)
    )


_INSERT_SUMMARY = insert(conversation_summaries)


@cache
def _prune_query() -> Any:
    s = conversation_summaries.c
    return delete(conversation_summaries).where(
        s.conversation_id == bindparam("cid", type_=s.conversation_id.type),
        s.version <= bindparam("oldest", type_=s.version.type),
    )


@cache
def _insert_and_prune_query() -> Any:
    """PostgreSQL: the insert and the prune in one statement (a data-modifying CTE), one round
    trip fewer; a duplicate version still fails the whole statement."""
    return _INSERT_SUMMARY.add_cte(_prune_query().cte("pruned"))


@cache
def _synced_query() -> Any:
    s = conversation_summaries.c
    return (
        update(conversation_summaries)
        .where(
            s.conversation_id == bindparam("cid", type_=s.conversation_id.type),
            s.version <= bindparam("upto", type_=s.version.type),
            s.synced_at.is_(None),
        )
        .values(synced_at=bindparam("now", type_=s.synced_at.type))
    )


class SummaryReader:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    async def summaries_of_user(
        self, user_id: UUID, *, after: tuple[UUID, int] | None, limit: int
    ) -> list[dict[str, Any]]:
        """Every kept summary version of the person's conversations (their export)."""
        s = conversation_summaries.c
        query = select(conversation_summaries).where(s.user_id == user_id)
        if after is not None:
            query = query.where(after_asc(s.conversation_id, s.version, after))
        rows = await self.conn.execute(query.order_by(s.conversation_id, s.version).limit(limit))
        return [dict(r._mapping) for r in rows]

    async def current_summary(self, conversation_id: UUID) -> SummaryRecord | None:
        s = conversation_summaries.c
        query = select(conversation_summaries).where(
            s.conversation_id == conversation_id, s.version == latest_version(conversation_id)
        )
        row = (await self.conn.execute(query)).first()
        return _summary(row) if row else None

    async def summary_state(self, conversation_id: UUID) -> SummaryState | None:
        """The conversation's message count, owner and current summary in one statement (a
        summary pass's read); None when the conversation is gone."""
        row = (await self.conn.execute(_state_query(), {"cid": conversation_id})).first()
        if row is None:
            return None
        current = _summary(row) if row.version is not None else None
        return SummaryState(row.message_count, row.owner_id, current)

    async def current_summaries(
        self, conversation_ids: Sequence[UUID]
    ) -> dict[UUID, SummaryRecord]:
        """The current summary of each of a page of conversations that has one."""
        if not conversation_ids:
            return {}
        s = conversation_summaries.c
        latest = (
            select(s.conversation_id, func.max(s.version).label("v"))
            .where(s.conversation_id.in_(list(conversation_ids)))
            .group_by(s.conversation_id)
            .subquery()
        )
        query = select(conversation_summaries).join(
            latest,
            and_(s.conversation_id == latest.c.conversation_id, s.version == latest.c.v),
        )
        return {r.conversation_id: _summary(r) for r in await self.conn.execute(query)}

    async def unsynced_summaries(
        self, *, limit: int, older_than: datetime | None = None
    ) -> list[SummaryRecord]:
        """Versions MongoDB has not got (the relay's work list): those written before
        ``older_than`` when given (a newer one's own copy and ack may still be on their way)."""
        s = conversation_summaries.c
        query = select(conversation_summaries).where(s.synced_at.is_(None))
        if older_than is not None:
            query = query.where(s.created_at < older_than)
        query = query.order_by(s.created_at).limit(limit)
        return [_summary(r) for r in await self.conn.execute(query)]


class SummaryRepository(SummaryReader):
    def __init__(self, conn: WriteConnection) -> None:
        self.conn = conn

    async def add_summary(self, summary: SummaryRecord, *, keep: int) -> None:
        """A new version (the primary key refuses a second writer of the same version); the
        versions older than the newest ``keep`` go."""
        values = {
            "conversation_id": summary.conversation_id,
            "version": summary.version,
            "user_id": summary.user_id,
            "covered_seq": summary.covered_seq,
            "content": summary.content,
            "model": summary.model,
            "messages": summary.messages,
            "created_at": summary.created_at,
        }
        oldest = summary.version - keep  # versions start at 1: none to prune before keep+1
        if oldest < 1:
            await self.conn.execute(_INSERT_SUMMARY, values)
        elif self.conn.dialect.name == "postgresql":
            prune = {"cid": summary.conversation_id, "oldest": oldest}
            await self.conn.execute(_insert_and_prune_query(), values | prune)
        else:
            await self.conn.execute(_INSERT_SUMMARY, values)
            await self.conn.execute(
                _prune_query(), {"cid": summary.conversation_id, "oldest": oldest}
            )

    async def mark_summary_synced(self, conversation_id: UUID, version: int, now: datetime) -> int:
        """This version and any older one still marked unsynced (the newest carries them)."""
        result = await self.conn.execute(
            _synced_query(), {"cid": conversation_id, "upto": version, "now": now}
        )
        return rowcount(result)

    async def mark_summaries_synced(self, acks: Sequence[tuple[UUID, int]], now: datetime) -> None:
        """``mark_summary_synced`` for each (conversation, version), one executemany."""
        if acks:
            await self.conn.execute(
                _synced_query(), [{"cid": cid, "upto": v, "now": now} for cid, v in acks]
            )
