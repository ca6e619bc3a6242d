"""Full-text search over a person's own messages and conversation titles.

The engine's text index does the matching, ranking and snippets (``stores/sql/search.py``);
this module validates the words, pages with an opaque cursor, turns the engine's highlight
marks into offsets, and audits an admin's search of someone else's data.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncEngine

from employeevirtual.errors import Forbidden, InvalidInput, NotFound, Unavailable
from employeevirtual.stores.records import MessageType, UserRecord
from employeevirtual.stores.sql.audit import AuditRepository
from employeevirtual.stores.sql.engine import read_connection, write_transaction
from employeevirtual.stores.sql.search import (
    HIGHLIGHT_END,
    HIGHLIGHT_START,
    SearchHit,
    SearchQuery,
    SearchReader,
)
from employeevirtual.stores.sql.users import UserReader

__all__ = ["Found", "SearchFilters", "SearchPage", "SearchService", "parse_terms"]

MAX_QUERY_CHARS = 200
MAX_TERMS = 12
_WORD = re.compile(r"(\w+)(\*?)")


def parse_terms(q: str) -> tuple[tuple[str, bool], ...]:
    """Words (letters, digits, underscore; any script) with an optional trailing ``*`` for a
    prefix; every other character separates words. No engine syntax passes through."""
    if len(q) > MAX_QUERY_CHARS:
        raise InvalidInput(f"q is longer than {MAX_QUERY_CHARS} characters; shorten it")
    terms = tuple((w.lower(), bool(star)) for w, star in _WORD.findall(q))
    if not terms:
        raise InvalidInput("q needs at least one word (letters or digits)")
    if len(terms) > MAX_TERMS:
        raise InvalidInput(f"q has more than {MAX_TERMS} words; use fewer")
    return terms


@dataclass(frozen=True, slots=True)
class SearchFilters:
    agent_id: UUID | None = None
    message_type: MessageType | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None


@dataclass(frozen=True, slots=True)
class Found:
    hit: SearchHit
    snippet: str
    highlights: list[tuple[int, int]]


@dataclass(frozen=True, slots=True)
class SearchPage:
    items: list[Found]
    next_cursor: str | None


def _highlights(marked: str) -> tuple[str, list[tuple[int, int]]]:
    """The snippet without marks, and the [start, end) offsets the marks enclosed."""
    out: list[str] = []
    spans: list[tuple[int, int]] = []
    start: int | None = None
    length = 0
    for ch in marked:
        if ch == HIGHLIGHT_START:
            start = length
        elif ch == HIGHLIGHT_END:
            if start is not None and length > start:
                spans.append((start, length))
            start = None
        else:
            out.append(ch)
            length += 1
    return "".join(out), spans


def encode_cursor(hit: SearchHit) -> str:
    raw = json.dumps([hit.score, hit.kind, str(hit.id)]).encode()
    return base64.urlsafe_b64encode(raw).decode()


def decode_cursor(cursor: str) -> tuple[float, str, UUID]:
    try:
        score, kind, last = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        after = float(score), str(kind), UUID(last)
    except (binascii.Error, ValueError, TypeError, UnicodeError):
        raise InvalidInput("cursor is not valid; pass next_cursor from a previous page") from None
    if not math.isfinite(after[0]):
        raise InvalidInput("cursor is not valid; pass next_cursor from a previous page")
    return after


class SearchService:
    def __init__(self, *, engine: AsyncEngine) -> None:
        self.engine = engine

    async def search(
        self,
        caller: UserRecord,
        q: str,
        *,
        filters: SearchFilters,
        limit: int,
        cursor: str | None,
        user_id: UUID | None = None,
        client_ip: str | None = None,
    ) -> SearchPage:
        """The caller's own data; an admin may name another ``user_id`` (audited first)."""
        terms = parse_terms(q)
        owner = caller.id if user_id is None else user_id
        if owner != caller.id:
            if not caller.is_admin:
                raise Forbidden("only an admin may search another user's data")
            await self._audit_admin_search(caller, owner, filters, client_ip)
        query = SearchQuery(
            owner_id=owner,
            terms=terms,
            limit=limit + 1,
            agent_id=filters.agent_id,
            message_type=filters.message_type,
            created_after=filters.created_after,
            created_before=filters.created_before,
            after=decode_cursor(cursor) if cursor else None,
        )
        try:
            async with read_connection(self.engine) as conn:
                hits = await SearchReader(conn).search(query)
        except NotImplementedError as exc:
            raise Unavailable(str(exc)) from None
        items = []
        for hit in hits[:limit]:
            snippet, spans = _highlights(hit.snippet)
            items.append(Found(hit=hit, snippet=snippet, highlights=spans))
        more = len(hits) > limit
        return SearchPage(items=items, next_cursor=encode_cursor(hits[limit - 1]) if more else None)

    async def _audit_admin_search(
        self, admin: UserRecord, owner: UUID, filters: SearchFilters, client_ip: str | None
    ) -> None:
        async with write_transaction(self.engine) as conn:
            if await UserReader(conn).get(owner) is None:
                raise NotFound(f"user {owner} not found")
            await AuditRepository(conn).record(
                action="search.admin",
                actor_id=admin.id,
                target_type="user",
                target_id=str(owner),
                details={
                    "agent_id": str(filters.agent_id) if filters.agent_id else None,
                    "message_type": filters.message_type,
                },
                client_ip=client_ip,
                now=datetime.now(UTC),
            )
