"""Full-text search over one owner's messages and conversation titles, inside the engine's text
index (see ``fulltext``). Owner, filters, ranking and paging are all in the query: nothing is
scanned or ranked in Python. Never commits."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from sqlalchemy import (
    Float,
    String,
    and_,
    case,
    cast,
    column,
    func,
    literal,
    literal_column,
    or_,
    select,
    table,
    union_all,
)
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.elements import ColumnElement

from employeevirtual.stores.records import MessageType
from employeevirtual.stores.sql.engine import Connection
from employeevirtual.stores.sql.fulltext import FOLD_FROM, FOLD_TO
from employeevirtual.stores.sql.search_columns import (
    conversation_hit_columns,
    message_hit_columns,
)
from employeevirtual.stores.sql.search_mssql import mark_snippet, mssql_statement
from employeevirtual.stores.sql.tables import conversations, messages

__all__ = [
    "HIGHLIGHT_END",
    "HIGHLIGHT_START",
    "SearchHit",
    "SearchHitKind",
    "SearchQuery",
    "SearchReader",
]

# private-use characters mark highlights in the engine's snippet; the service turns them into
# offsets, so a client never has to parse markup out of someone's text
HIGHLIGHT_START = "\ue000"
HIGHLIGHT_END = "\ue001"
SNIPPET_WORDS = 16

# a message's text matched, or a conversation's title
SearchHitKind = Literal["message", "conversation"]


@dataclass(frozen=True, slots=True)
class SearchQuery:
    owner_id: UUID
    terms: tuple[tuple[str, bool], ...]  # (word, prefix?): words only, already validated
    limit: int
    agent_id: UUID | None = None
    message_type: MessageType | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    after: tuple[float, str, UUID] | None = None  # keyset: (score, kind, id) of the last hit


@dataclass(frozen=True, slots=True)
class SearchHit:
    kind: SearchHitKind
    id: UUID
    conversation_id: UUID
    seq: int | None
    message_type: MessageType | None
    agent_id: UUID | None
    created_at: datetime
    title: str | None
    snippet: str
    score: float


class SearchReader:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    async def search(self, query: SearchQuery) -> list[SearchHit]:
        dialect = self.conn.dialect.name
        if dialect == "sqlite":
            statement = _sqlite(query)
        elif dialect == "postgresql":
            statement = _postgres(query)
        elif dialect == "mssql":
            return await self._mssql(query)
        else:
            raise NotImplementedError(f"full-text search is not available on {dialect}")
        rows = await self.conn.execute(statement)
        return [_hit(r._mapping) for r in rows]

    async def _mssql(self, query: SearchQuery) -> list[SearchHit]:
        try:
            rows = await self.conn.execute(mssql_statement(query, filters=_filters, page=_page))
        except DBAPIError as exc:
            # 7601/7609/7616: no full-text index (the feature was not installed when the
            # migration ran, so its guarded DDL skipped the catalog and the indexes)
            if "full-text" not in str(exc.orig).lower():
                raise
            raise NotImplementedError(
                "full-text search needs SQL Server's Full-Text Search feature: install it, then "
                "run the 0015_people migration's full-text DDL again (fulltext.mssql_ddl)"
            ) from None
        return [
            _hit(
                {
                    **r._mapping,
                    "snippet": mark_snippet(
                        r.snippet or "",
                        query.terms,
                        words=SNIPPET_WORDS,
                        start=HIGHLIGHT_START,
                        end=HIGHLIGHT_END,
                    ),
                }
            )
            for r in rows
        ]


def _hit(m: Any) -> SearchHit:
    created = m["created_at"]
    return SearchHit(
        kind=m["kind"],
        id=_uuid(m["id"]),
        conversation_id=_uuid(m["conversation_id"]),
        seq=m["seq"],
        message_type=m["message_type"],
        agent_id=_uuid(m["agent_id"]) if m["agent_id"] is not None else None,
        created_at=created,
        title=m["title"],
        snippet=m["snippet"] or "",
        score=float(m["score"]),
    )


def _uuid(value: Any) -> UUID:
    return value if isinstance(value, UUID) else UUID(str(value))


def _filters(q: SearchQuery, *, on_messages: bool) -> list[ColumnElement[bool]]:
    """Owner first (the index hit is joined to the owner's rows inside the engine)."""
    if on_messages:
        m = messages.c
        found = [m.user_id == q.owner_id]
        if q.agent_id is not None:  # the conversation's agent (a user's message names none)
            found.append(conversations.c.agent_id == q.agent_id)
        if q.message_type is not None:
            found.append(m.message_type == q.message_type)
        if q.created_after is not None:
            found.append(m.created_at >= q.created_after)
        if q.created_before is not None:
            found.append(m.created_at < q.created_before)
        return found
    c = conversations.c
    found = [c.user_id == q.owner_id]
    if q.agent_id is not None:
        found.append(c.agent_id == q.agent_id)
    if q.created_after is not None:
        found.append(c.created_at >= q.created_after)
    if q.created_before is not None:
        found.append(c.created_at < q.created_before)
    return found


def _page(union: Any, q: SearchQuery) -> Any:
    hits = union.subquery("hits")
    statement = select(hits)
    if q.after is not None:
        score, kind, last_id = q.after
        statement = statement.where(
            or_(
                hits.c.score < score,
                and_(hits.c.score == score, hits.c.kind > kind),
                and_(hits.c.score == score, hits.c.kind == kind, hits.c.id > last_id),
            )
        )
    return statement.order_by(hits.c.score.desc(), hits.c.kind, hits.c.id).limit(q.limit)


# -- SQLite: FTS5 ----------------------------------------------------------------------------


def _fts5_match(q: SearchQuery) -> str:
    # every word quoted (no FTS5 syntax from the user reaches the engine); implicit AND
    return " ".join(f'"{word}"' + ("*" if prefix else "") for word, prefix in q.terms)


def _fts_snippet(fts_table: str) -> Any:
    return func.snippet(
        literal_column(fts_table), 0, HIGHLIGHT_START, HIGHLIGHT_END, "…", SNIPPET_WORDS
    ).label("snippet")


def _sqlite(q: SearchQuery) -> Any:
    match = _fts5_match(q)
    mfts = table("messages_fts", column("rowid"))
    cfts = table("conversations_fts", column("rowid"))
    m, c = messages.c, conversations.c
    message_hits = (
        select(
            *message_hit_columns(),
            _fts_snippet("messages_fts"),
            (-func.bm25(literal_column("messages_fts"))).label("score"),
        )
        .select_from(mfts)
        .join(messages, literal_column("messages.rowid") == mfts.c.rowid)
        .join(conversations, c.id == m.conversation_id)
        .where(literal_column("messages_fts").op("MATCH")(match), *_filters(q, on_messages=True))
    )
    selects = [message_hits]
    if q.message_type is None:
        selects.append(
            select(
                *conversation_hit_columns(),
                _fts_snippet("conversations_fts"),
                (-func.bm25(literal_column("conversations_fts"))).label("score"),
            )
            .select_from(cfts)
            .join(conversations, literal_column("conversations.rowid") == cfts.c.rowid)
            .where(
                literal_column("conversations_fts").op("MATCH")(match),
                *_filters(q, on_messages=False),
            )
        )
    return _page(union_all(*selects), q)


# -- PostgreSQL: tsvector + GIN --------------------------------------------------------------


def _pg_query(q: SearchQuery, config: str) -> Any:
    text = " & ".join(word + (":*" if prefix else "") for word, prefix in q.terms)
    folded = func.translate(literal(text, String), FOLD_FROM, FOLD_TO)
    return func.to_tsquery(literal_column(f"'{config}'::regconfig"), folded)


def _pg_tsquery(q: SearchQuery) -> Any:
    simple, english, portuguese = (_pg_query(q, cfg) for cfg in ("simple", "english", "portuguese"))
    return simple.op("||")(english).op("||")(portuguese)


# ts_rank_cd's normalization: 1 divides by 1 + log(document length), so a short message that
# says the term as often as a long reply ranks above it (SQLite's bm25 does the same); 32 maps
# the rank into [0, 1). Without it, equal covers tie and the order falls to the row id.
RANK_NORMALIZATION = 1 | 32


def _pg_rank(vector: Any, tsq: Any) -> Any:
    return cast(func.ts_rank_cd(vector, tsq, RANK_NORMALIZATION), Float)


def _postgres(q: SearchQuery) -> Any:
    tsq = _pg_tsquery(q)
    m, c = messages.c, conversations.c
    search_vector: Any = literal_column("messages.search_vector")
    title_vector: Any = literal_column("conversations.title_vector")
    message_hits = (
        select(
            *message_hit_columns(),
            _pg_rank(search_vector, tsq).label("score"),
        )
        .select_from(messages)
        .join(conversations, c.id == m.conversation_id)
        .where(search_vector.op("@@")(tsq), *_filters(q, on_messages=True))
    )
    selects = [message_hits]
    if q.message_type is None:
        selects.append(
            select(
                *conversation_hit_columns(),
                _pg_rank(title_vector, tsq).label("score"),
            )
            .select_from(conversations)
            .where(title_vector.op("@@")(tsq), *_filters(q, on_messages=False))
        )
    page = _page(union_all(*selects), q).subquery("page")
    # headlines only for the page's rows: ts_headline re-parses the text, so never for all hits
    body = messages.alias("body")
    highlight = (
        f"StartSel={HIGHLIGHT_START}, StopSel={HIGHLIGHT_END}, MaxWords={SNIPPET_WORDS}, "
        "MinWords=5, MaxFragments=1, FragmentDelimiter=…"
    )
    text = func.coalesce(case((page.c.kind == "message", body.c.content), else_=page.c.title), "")
    headline = func.ts_headline(
        literal_column("'portuguese'::regconfig"), text, _pg_headline_query(q), highlight
    )
    return (
        select(page, headline.label("snippet"))
        .select_from(page.outerjoin(body, and_(page.c.kind == "message", body.c.id == page.c.id)))
        .order_by(page.c.score.desc(), page.c.kind, page.c.id)
    )


def _pg_headline_query(q: SearchQuery) -> Any:
    """Highlights are found on the original (accented) text, so the query words are taken as
    written: a folded match ('acao' finding 'ação') is found and ranked but may show unmarked."""
    text = " & ".join(word + (":*" if prefix else "") for word, prefix in q.terms)
    parts = [
        func.to_tsquery(literal_column(f"'{cfg}'::regconfig"), literal(text, String))
        for cfg in ("simple", "english", "portuguese")
    ]
    return parts[0].op("||")(parts[1]).op("||")(parts[2])
