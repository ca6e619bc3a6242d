"""``empl.conversation_summaries`` (issue 18): a conversation's rolling summary, one row per
version. Never commits: the caller owns the transaction."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import and_, delete, func, insert, select, update

from employeevirtual.stores.sql.engine import Connection, WriteConnection
from employeevirtual.stores.sql.keyset import after_asc
from employeevirtual.stores.sql.rows import rowcount
from employeevirtual.stores.sql.tables import conversation_summaries

__all__ = ["SummaryReader", "SummaryRecord", "SummaryRepository", "latest_version"]


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

    async def unsynced_summaries(self, *, limit: int) -> list[SummaryRecord]:
        s = conversation_summaries.c
        query = (
            select(conversation_summaries)
            .where(s.synced_at.is_(None))
            .order_by(s.created_at)
            .limit(limit)
        )
        return [_summary(r) for r in await self.conn.execute(query)]


class SummaryRepository(SummaryReader):
    def __init__(self, conn: WriteConnection) -> None:
        self.conn = conn

    async def add_summary(self, summary: SummaryRecord, *, keep: int) -> None:
        """A new version (the primary key refuses a second writer of the same version); the
        versions older than the newest ``keep`` go."""
        s = conversation_summaries.c
        await self.conn.execute(
            insert(conversation_summaries).values(
                conversation_id=summary.conversation_id,
                version=summary.version,
                user_id=summary.user_id,
                covered_seq=summary.covered_seq,
                content=summary.content,
                model=summary.model,
                messages=summary.messages,
                created_at=summary.created_at,
            )
        )
        await self.conn.execute(
            delete(conversation_summaries).where(
                s.conversation_id == summary.conversation_id, s.version <= summary.version - keep
            )
        )

    async def mark_summary_synced(self, conversation_id: UUID, version: int, now: datetime) -> int:
        """This version and any older one still marked unsynced (the newest carries them)."""
        s = conversation_summaries.c
        result = await self.conn.execute(
            update(conversation_summaries)
            .where(
                s.conversation_id == conversation_id,
                s.version <= version,
                s.synced_at.is_(None),
            )
            .values(synced_at=now)
        )
        return rowcount(result)
