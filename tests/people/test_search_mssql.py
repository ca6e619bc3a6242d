"""SQL Server's search path, compiled with the mssql dialect (no SQL Server on the test machines:
what runs on one is untested here). The migration's full-text DDL is checked in
``tests/unit/test_mssql_migration.py``."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime

import pytest
import sqlglot
from sqlalchemy.dialects import mssql
from sqlglot import exp

from employeevirtual.people.search import parse_terms
from employeevirtual.stores.sql.search import (
    HIGHLIGHT_END,
    HIGHLIGHT_START,
    SearchQuery,
    _filters,
    _page,
)
from employeevirtual.stores.sql.search_mssql import (
    contains_condition,
    mark_snippet,
    mssql_statement,
)

CONTAINSTABLE = re.compile(r"CONTAINSTABLE\(([^,]+), (\w+), (:\w+), LANGUAGE (\d+)\)")


def _compiled(query: SearchQuery, *, translated: bool = True) -> tuple[str, dict[str, object]]:
    """``translated``: as an engine with a schema map compiles it (tables named through the map's
    placeholder, replaced at execution)."""
    statement = mssql_statement(query, filters=_filters, page=_page)
    compiled = statement.compile(
        dialect=mssql.dialect(),
        schema_translate_map={"empl": "tenant"} if translated else None,
        compile_kwargs={"render_postcompile": True},
    )
    return str(compiled), dict(compiled.params)


def test_the_search_condition_stems_each_word_and_keeps_prefixes() -> None:
    assert contains_condition(parse_terms("Férias relat* 2026")) == (
        'FORMSOF(INFLECTIONAL, "férias") AND "relat*" AND FORMSOF(INFLECTIONAL, "2026")'
    )
    # parse_terms never lets full-text syntax through; the builder refuses it anyway
    assert contains_condition(parse_terms('"a" OR NEAR(b, c)')) == (
        'FORMSOF(INFLECTIONAL, "a") AND FORMSOF(INFLECTIONAL, "or") AND '
        'FORMSOF(INFLECTIONAL, "near") AND FORMSOF(INFLECTIONAL, "b") AND '
        'FORMSOF(INFLECTIONAL, "c")'
    )
    with pytest.raises(ValueError, match="not a search word"):
        contains_condition((('x" OR "y', False),))


def test_the_statement_ranks_in_the_full_text_index_and_filters_by_owner_inside() -> None:
    owner, agent, last = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    since = datetime(2026, 1, 1, tzinfo=UTC)
    sql, params = _compiled(
        SearchQuery(
            owner_id=owner,
            terms=parse_terms("férias relat*"),
            limit=21,
            agent_id=agent,
            created_after=since,
            after=(0.5, "message", last),
        )
    )
    calls = CONTAINSTABLE.findall(sql)
    # two tables x two languages (Portuguese and English stemming), every call on the same
    # bound condition: the user's words never become SQL text
    assert sorted((table.split(".")[-1], col, lang) for table, col, _, lang in calls) == [
        ("conversations", "title", "1033"),
        ("conversations", "title", "1046"),
        ("messages", "content", "1033"),
        ("messages", "content", "1046"),
    ]
    assert len({param for _, _, param, _ in calls}) == 1
    condition = params[calls[0][2][1:]]
    assert condition == 'FORMSOF(INFLECTIONAL, "férias") AND "relat*"'
    assert "férias" not in sql and "relat" not in sql
    # the indexed table is named like every other table, so the schema map reaches it too
    assert {table for table, *_ in calls} == {
        "__[SCHEMA_empl].messages",
        "__[SCHEMA_empl].conversations",
    }
    # the owner and the filters, in both branches, inside the statement
    assert sql.count("messages.user_id = :user_id_1") == 1
    assert sql.count("conversations.user_id = :user_id_2") == 1
    assert params["user_id_1"] == params["user_id_2"] == owner
    assert params["agent_id_1"] == params["agent_id_2"] == agent
    assert params["created_at_1"] == since
    # the best rank of the languages per row, joined to the row by the index's key
    assert "GROUP BY messages_ranked.hit_key" in sql
    assert (
        "JOIN __[SCHEMA_empl].messages ON __[SCHEMA_empl].messages.id = messages_hits.hit_key"
        in sql
    )
    # ranked and keyset-paged by the engine: TOP n ... ORDER BY score DESC, kind, id
    assert sql.startswith("SELECT TOP 21 ")
    assert sql.rstrip().endswith("ORDER BY hits.score DESC, hits.kind, hits.id")
    assert "hits.score < :score_1" in sql and params["id_1"] == last

    # the rest is plain T-SQL (sqlglot cannot read CONTAINSTABLE's LANGUAGE argument)
    plain, _ = _compiled(
        SearchQuery(owner_id=owner, terms=parse_terms("x"), limit=2), translated=False
    )
    parsed = sqlglot.parse_one(re.sub(r", LANGUAGE \d+\)", ")", plain), read="tsql")
    assert not isinstance(parsed, exp.Command)
    assert len(list(parsed.find_all(exp.Union))) == 3  # messages | titles, two languages each


def test_a_message_type_filter_leaves_titles_out() -> None:
    sql, params = _compiled(
        SearchQuery(owner_id=uuid.uuid4(), terms=parse_terms("ação"), limit=5, message_type="agent")
    )
    assert [c[0].split(".")[-1] for c in CONTAINSTABLE.findall(sql)] == ["messages", "messages"]
    assert "message_type = :message_type_1" in sql and params["message_type_1"] == "agent"


def _marked(snippet: str) -> list[str]:
    return re.findall(f"{HIGHLIGHT_START}(.*?){HIGHLIGHT_END}", snippet)


def test_the_snippet_marks_the_words_the_engine_matched() -> None:
    text = (
        "Bom dia! Antes de tudo, uma pergunta longa sobre outra coisa qualquer, e depois: "
        "quantos dias de Férias tenho em 2026? As férias vencidas contam?"
    )
    snippet = mark_snippet(
        text, parse_terms("ferias"), words=12, start=HIGHLIGHT_START, end=HIGHLIGHT_END
    )
    assert _marked(snippet) == ["Férias", "férias"]  # accents folded, the case kept
    assert snippet.startswith("…") and "Bom dia" not in snippet  # the window moved to the hit
    plain = snippet.replace(HIGHLIGHT_START, "").replace(HIGHLIGHT_END, "")
    assert plain.strip("…") in text
    # inflected forms and prefixes
    english = mark_snippet(
        "The quarterly reports are late; report them.",
        parse_terms("report relat*"),
        words=16,
        start=HIGHLIGHT_START,
        end=HIGHLIGHT_END,
    )
    assert _marked(english) == ["reports", "report"]
    assert _marked(
        mark_snippet("Relatório anual", parse_terms("relat*"), words=5, start="[", end="]")
        .replace("[", HIGHLIGHT_START)
        .replace("]", HIGHLIGHT_END)
    ) == ["Relatório"]
