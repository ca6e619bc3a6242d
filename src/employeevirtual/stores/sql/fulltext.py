"""The text index behind search, one per engine, kept in step by the engine itself.

* SQLite: FTS5 external-content tables over ``messages.content`` and ``conversations.title``,
  tokenizer ``porter unicode61 remove_diacritics 2`` (accents folded, English stemming), kept
  in step by triggers, so a turn's messages are searchable when its transaction commits and a
  deleted conversation's are gone in the same transaction.
* PostgreSQL: a stored generated ``tsvector`` column on each table with a GIN index. Accents are
  folded with ``translate`` (no extension needed: ``unaccent`` is an extension a managed
  database may not allow, and its function is not immutable, so it cannot feed a generated
  column); the vector joins the ``simple``, ``english`` and ``portuguese`` configurations, so
  exact words and both languages' stems match.
* SQL Server: full-text catalog (accent insensitive) and indexes, language 1046
  (Portuguese, Brazil), created only where the full-text feature is installed.
"""

from __future__ import annotations

__all__ = [
    "FOLD_FROM",
    "FOLD_TO",
    "MSSQL_CATALOG",
    "PG_CONFIGS",
    "SQLITE_INDEXES",
    "SQLITE_TOKENIZE",
    "mssql_ddl",
    "pg_fold_sql",
    "pg_vector_sql",
    "sqlite_ddl",
    "sqlite_drop",
]

SQLITE_TOKENIZE = "porter unicode61 remove_diacritics 2"
PG_CONFIGS = ("simple", "english", "portuguese")
MSSQL_CATALOG = "ev_fulltext"
MSSQL_LANGUAGE = 1046  # Portuguese (Brazil): word breaker and inflectional stemmer

_ACCENTED = "ÁÀÂÃÄÅáàâãäåÉÈÊËéèêëÍÌÎÏíìîïÓÒÔÕÖóòôõöÚÙÛÜúùûüÇçÑñ"
_PLAIN = "AAAAAAaaaaaaEEEEeeeeIIIIiiiiOOOOOoooooUUUUuuuuCcNn"
assert len(_ACCENTED) == len(_PLAIN)
FOLD_FROM, FOLD_TO = _ACCENTED, _PLAIN


def pg_fold_sql(expression: str) -> str:
    return f"translate({expression}, '{FOLD_FROM}', '{FOLD_TO}')"


def pg_vector_sql(column: str) -> str:
    """The generated column's expression (immutable: explicit configurations only)."""
    folded = pg_fold_sql(f"coalesce({column}, '')")
    return " || ".join(f"to_tsvector('{cfg}'::regconfig, {folded})" for cfg in PG_CONFIGS)


# (fts table, content table, column)
SQLITE_INDEXES = (
    ("messages_fts", "messages", "content"),
    ("conversations_fts", "conversations", "title"),
)


def sqlite_ddl() -> list[str]:
    statements: list[str] = []
    for fts, table, column in SQLITE_INDEXES:
        forget = (
            f"INSERT INTO {fts}({fts}, rowid, {column}) "
            f"VALUES ('delete', old.rowid, old.{column}); "
        )
        statements += [
            f"CREATE VIRTUAL TABLE {fts} USING fts5({column}, content='{table}', "
            f"content_rowid='rowid', tokenize='{SQLITE_TOKENIZE}')",
            f"CREATE TRIGGER {fts}_ai AFTER INSERT ON {table} BEGIN "
            f"INSERT INTO {fts}(rowid, {column}) VALUES (new.rowid, new.{column}); END",
            f"CREATE TRIGGER {fts}_ad AFTER DELETE ON {table} BEGIN {forget}END",
            f"CREATE TRIGGER {fts}_au AFTER UPDATE OF {column} ON {table} BEGIN {forget}"
            f"INSERT INTO {fts}(rowid, {column}) VALUES (new.rowid, new.{column}); END",
            f"INSERT INTO {fts}({fts}) VALUES ('rebuild')",
        ]
    return statements


def sqlite_drop() -> list[str]:
    statements: list[str] = []
    for fts, _table, _column in SQLITE_INDEXES:
        statements += [f"DROP TRIGGER IF EXISTS {fts}_{t}" for t in ("ai", "ad", "au")]
        statements.append(f"DROP TABLE IF EXISTS {fts}")
    return statements


def mssql_ddl(schema: str) -> list[str]:
    """Each statement guarded so a server without the full-text feature skips it (search then
    answers 503 there). Full-text DDL cannot run inside a transaction: the migration runs these
    in an autocommit block."""
    installed = "FULLTEXTSERVICEPROPERTY('IsFullTextInstalled') = 1"
    statements = [
        f"IF {installed} AND NOT EXISTS (SELECT 1 FROM sys.fulltext_catalogs WHERE name = "
        f"N'{MSSQL_CATALOG}') EXEC(N'CREATE FULLTEXT CATALOG [{MSSQL_CATALOG}] WITH "
        "ACCENT_SENSITIVITY = OFF')"
    ]
    for table, column in (("messages", "content"), ("conversations", "title")):
        statements.append(
            f"IF {installed} AND NOT EXISTS (SELECT 1 FROM sys.fulltext_indexes WHERE object_id = "
            f"OBJECT_ID(N'{schema}.{table}')) EXEC(N'CREATE FULLTEXT INDEX ON [{schema}].[{table}] "
            f"([{column}] LANGUAGE {MSSQL_LANGUAGE}) KEY INDEX [PK_{table}] ON [{MSSQL_CATALOG}] "
            "WITH CHANGE_TRACKING AUTO')"
        )
    return statements
