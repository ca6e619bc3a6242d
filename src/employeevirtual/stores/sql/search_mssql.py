"""SQL Server's search: ``CONTAINSTABLE`` over the full-text indexes the people migration creates
(``fulltext.mssql_ddl``: catalog ``ev_fulltext``, accent insensitive, word breaker 1046).

Why full text and not ``LIKE '%word%'``: a ``LIKE`` with a leading wildcard cannot use an index,
so every search would read all of the person's messages (their whole history, growing without
bound), rank nothing, and neither stem ("férias"/"féria", "reports"/"report") nor fold
accents beyond the collation. ``CONTAINSTABLE`` answers from the inverted index with a rank.

* Each word becomes ``FORMSOF(INFLECTIONAL, "word")`` (stemming) and a ``word*`` a prefix term
  ``"word*"``; words are ANDed. The condition is a bound parameter, and the words are letters
  and digits only (``people.search.parse_terms``), so no full-text syntax from a user reaches it.
* Stemming is asked in Portuguese (1046) and English (1033): two ``CONTAINSTABLE`` calls, the
  best rank per row kept. Rank (0..1000) becomes a score in [0, 1].
* The owner, the filters, the order and the page are in the same statement; the index's hit is
  joined to the person's rows, so a deleted row is gone at once even though SQL Server
  updates the index itself asynchronously (``CHANGE_TRACKING AUTO``: a new message becomes
  searchable a few seconds after its commit, not in the same transaction as on SQLite and
  PostgreSQL).
* SQL Server has no highlight function: the statement returns the page's texts (never more
  rows than the page) and ``mark_snippet`` cuts a window around the first matching word.

Untested against a real SQL Server (none on the test machines): the statement is compiled with
the mssql dialect and checked in ``tests/people/test_search_mssql.py``.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from sqlalchemy import Float, cast, func, literal, select, union_all
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from employeevirtual.stores.sql.search_columns import (
    conversation_hit_columns,
    message_hit_columns,
)
from employeevirtual.stores.sql.tables import conversations, messages

__all__ = ["LANGUAGES", "contains_condition", "mark_snippet", "mssql_statement"]

LANGUAGES = (1046, 1033)  # Portuguese (Brazil), English (United States)
MAX_RANK = 1000.0


def contains_condition(terms: tuple[tuple[str, bool], ...]) -> str:
    """The ``CONTAINS`` search condition for validated words (letters, digits, underscore)."""
    parts = []
    for word, prefix in terms:
        if not re.fullmatch(r"\w+", word):
            raise ValueError(f"not a search word: {word!r}")
        parts.append(f'"{word}*"' if prefix else f'FORMSOF(INFLECTIONAL, "{word}")')
    return " AND ".join(parts)


class _ContainsTable(FunctionElement[Any]):
    """``CONTAINSTABLE(<table>, <column>, <condition>, LANGUAGE <n>)``: one subclass per table,
    column and language, so SQLAlchemy's statement cache can tell them apart."""

    inherit_cache = True
    fts_table: Any
    fts_column: str
    language: int


def _contains_table(table: Any, column: str, language: int) -> type[_ContainsTable]:
    name = f"ContainsTable_{table.name}_{language}"
    attrs = {"fts_table": table, "fts_column": column, "language": language}
    return type(name, (_ContainsTable,), {"inherit_cache": True, **attrs})


_TABLES = {
    (table.name, language): _contains_table(table, column, language)
    for table, column in ((messages, "content"), (conversations, "title"))
    for language in LANGUAGES
}


@compiles(_ContainsTable)
def _render(element: _ContainsTable, compiler: SQLCompiler, **kw: Any) -> str:
    # the table through the compiler, so the engine's schema_translate_map still applies
    inner = {k: v for k, v in kw.items() if k not in ("asfrom", "from_linter", "lateral")}
    table = compiler.process(element.fts_table, asfrom=True, **inner)
    column = compiler.preparer.quote(element.fts_column)
    condition = compiler.process(element.clauses, **inner)
    return f"CONTAINSTABLE({table}, {column}, {condition}, LANGUAGE {element.language})"


def _best_rank(table: Any, condition: Any) -> Any:
    """``(key, rank)``: the best of the languages' ranks for each matching row."""
    ranked = union_all(
        *(
            select(hit.c.KEY.label("hit_key"), hit.c.RANK.label("hit_rank")).select_from(hit)
            for language in LANGUAGES
            for hit in [_TABLES[(table.name, language)](condition).table_valued("KEY", "RANK")]
        )
    ).subquery(f"{table.name}_ranked")
    return (
        select(ranked.c.hit_key, func.max(ranked.c.hit_rank).label("hit_rank"))
        .group_by(ranked.c.hit_key)
        .subquery(f"{table.name}_hits")
    )


def mssql_statement(q: Any, *, filters: Any, page: Any) -> Any:
    """The page of hits (``q``: ``SearchQuery``; ``filters`` and ``page`` from ``search``)."""
    condition = literal(contains_condition(q.terms))
    m, c = messages.c, conversations.c
    found = _best_rank(messages, condition)
    message_hits = (
        select(
            *message_hit_columns(),
            m.content.label("snippet"),
            (cast(found.c.hit_rank, Float) / MAX_RANK).label("score"),
        )
        .select_from(found)
        .join(messages, m.id == found.c.hit_key)
        .join(conversations, c.id == m.conversation_id)
        .where(*filters(q, on_messages=True))
    )
    selects = [message_hits]
    if q.message_type is None:
        titled = _best_rank(conversations, condition)
        selects.append(
            select(
                *conversation_hit_columns(),
                c.title.label("snippet"),
                (cast(titled.c.hit_rank, Float) / MAX_RANK).label("score"),
            )
            .select_from(titled)
            .join(conversations, c.id == titled.c.hit_key)
            .where(*filters(q, on_messages=False))
        )
    return page(union_all(*selects), q)


def _fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


_TOKEN = re.compile(r"\w+")


def _matches(token: str, terms: tuple[tuple[str, bool], ...]) -> bool:
    folded = _fold(token)
    for word, prefix in terms:
        term = _fold(word)
        if folded == term or (prefix and folded.startswith(term)):
            return True
        # an inflected form: the same stem, give or take a short ending (the engine decided
        # the match; this only finds the word to mark)
        stem = term[: max(4, len(term) - 2)]
        if len(term) >= 4 and folded.startswith(stem) and len(folded) <= len(term) + 4:
            return True
    return False


def mark_snippet(
    text: str, terms: tuple[tuple[str, bool], ...], *, words: int, start: str, end: str
) -> str:
    """About ``words`` words of ``text`` around its first matching word, each matching word
    between ``start`` and ``end``, with ``…`` where the text was cut."""
    tokens = list(_TOKEN.finditer(text))
    if not tokens:
        return text[:200]
    first = next((i for i, t in enumerate(tokens) if _matches(t.group(), terms)), 0)
    lo = max(0, first - words // 3)
    hi = min(len(tokens), lo + words)
    begin = tokens[lo].start() if lo > 0 else 0
    finish = tokens[hi - 1].end() if hi < len(tokens) else len(text)
    out = ["…" if lo > 0 else ""]
    at = begin
    for token in tokens[lo:hi]:
        out.append(text[at : token.start()])
        word = token.group()
        out.append(f"{start}{word}{end}" if _matches(word, terms) else word)
        at = token.end()
    out.append(text[at:finish])
    out.append("…" if hi < len(tokens) else "")
    return "".join(out)
