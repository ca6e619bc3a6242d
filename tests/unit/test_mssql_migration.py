"""The whole migration rendered for SQL Server (Alembic offline mode) is T-SQL with our types."""

from __future__ import annotations

import sqlglot
from sqlglot import exp

from employeevirtual.stores.sql.migrate import render_sql
from employeevirtual.stores.sql.tables import metadata

JSON_COLUMNS = {
    "metadata",
    "message_metadata",
    "model_settings",
    "tools",
    "details",
    "knowledge_base_ids",
    "command_line",
    "secret_names",
    "available_to",
    "tool_list",
}
BOOL_COLUMNS = {"is_active", "is_edited"}
ALLOWED = {
    "UNIQUEIDENTIFIER",
    "DATETIMEOFFSET",
    "NVARCHAR",
    "VARCHAR",
    "BIT",
    "INTEGER",
    "BIGINT",
    "NUMERIC",
}


def _batches() -> list[str]:
    sql = render_sql("mssql+pyodbc://")
    return [b.strip() for b in sql.split("\nGO") if b.strip()]


def _tables() -> dict[str, exp.Create]:
    tables: dict[str, exp.Create] = {}
    for batch in _batches():
        statement = sqlglot.parse_one(batch, read="tsql")
        if isinstance(statement, exp.Create) and statement.kind == "TABLE":
            table = statement.this.this
            tables[f"{table.db}.{table.name}"] = statement
    return tables


def test_every_batch_parses_as_tsql() -> None:
    batches = _batches()
    assert any("CREATE SCHEMA [empl]" in b for b in batches)
    for batch in batches:
        statements = [s for s in sqlglot.parse(batch, read="tsql") if s is not None]
        assert statements, batch
        for statement in statements:
            # sqlglot falls back to an opaque Command for what it cannot parse
            assert not isinstance(statement, exp.Command), statement.sql("tsql")
            assert sqlglot.parse_one(statement.sql("tsql"), read="tsql") is not None


def test_tables_use_schema_empl_and_sql_server_types() -> None:
    tables = _tables()
    expected = {f"empl.{t.name}" for t in metadata.sorted_tables} | {"empl.alembic_version"}
    assert set(tables) == expected
    for name, create in tables.items():
        for column in create.find_all(exp.ColumnDef):
            kind = column.args["kind"]
            type_sql = kind.sql("tsql").upper()
            base = type_sql.split("(")[0]
            assert base in ALLOWED, (name, column.name, type_sql)
            free_text = {"target_id", "session_id"}
            if (
                column.name == "id" or column.name.endswith("_id")
            ) and column.name not in free_text:
                assert type_sql == "UNIQUEIDENTIFIER", (name, column.name, type_sql)
            if column.name.endswith("_at"):
                assert type_sql == "DATETIMEOFFSET", (name, column.name, type_sql)
            if column.name in JSON_COLUMNS:
                assert type_sql == "NVARCHAR(MAX)", (name, column.name, type_sql)
            if column.name in BOOL_COLUMNS:
                assert type_sql == "BIT", (name, column.name, type_sql)
            if column.name in {"content", "instructions"}:
                assert type_sql == "NVARCHAR(MAX)", (name, column.name, type_sql)


def test_seed_indexes_with_seed_names() -> None:
    sql = render_sql("mssql+pyodbc://")
    for index, table, column in [
        ("IX_conversations_user_id", "conversations", "user_id"),
        ("IX_conversations_agent_id", "conversations", "agent_id"),
        ("IX_conversations_status", "conversations", "status"),
        ("IX_conversations_last_message", "conversations", "last_message_at"),
        ("IX_messages_conversation_id", "messages", "conversation_id"),
        ("IX_messages_user_id", "messages", "user_id"),
        ("IX_messages_type", "messages", "message_type"),
    ]:
        assert f"CREATE INDEX [{index}] ON empl.{table} ({column})" in sql
    assert "CONSTRAINT [UQ_messages_conversation_seq] UNIQUE (conversation_id, seq)" in sql


def test_full_text_index_where_installed_outside_a_transaction() -> None:
    """SQL Server's full-text DDL refuses to run in a transaction: it sits between the COMMIT
    and BEGIN of Alembic's autocommit block, each statement guarded by the feature's presence."""
    sql = render_sql("mssql+pyodbc://")
    catalog = sql.index("CREATE FULLTEXT CATALOG [ev_fulltext] WITH ACCENT_SENSITIVITY = OFF")
    messages = sql.index(
        "CREATE FULLTEXT INDEX ON [empl].[messages] ([content] LANGUAGE 1046) "
        "KEY INDEX [PK_messages] ON [ev_fulltext] WITH CHANGE_TRACKING AUTO"
    )
    titles = sql.index("CREATE FULLTEXT INDEX ON [empl].[conversations] ([title] LANGUAGE 1046)")
    before = sql.rindex("COMMIT;", 0, catalog)
    after = sql.index("BEGIN TRANSACTION;", titles)
    assert before < catalog < messages < titles < after
    for batch in _batches():
        if "FULLTEXT" in batch:
            assert batch.startswith("IF FULLTEXTSERVICEPROPERTY('IsFullTextInstalled') = 1")


def test_budgets_and_feedback_tables() -> None:
    """Issue 14: budgets (their counters in BIGINT/NUMERIC, one per scope) and feedback (a
    filtered index over what the relay still owes MongoDB)."""
    sql = render_sql("mssql+pyodbc://")
    tables = _tables()
    budgets = {
        c.name: c.args["kind"].sql("tsql").upper()
        for c in tables["empl.budgets"].find_all(exp.ColumnDef)
    }
    assert budgets["used_tokens"] == "BIGINT" and budgets["max_tokens"] == "BIGINT"
    assert budgets["used_cost"] == "NUMERIC(18, 8)" and budgets["period"] == "VARCHAR(7)"
    assert "CONSTRAINT [UQ_budgets_scope] UNIQUE (scope, scope_id)" in sql
    feedback = {c.name for c in tables["empl.message_feedback"].find_all(exp.ColumnDef)}
    assert {"message_id", "rating", "comment", "synced_at"} <= feedback
    assert (
        "CREATE INDEX [IX_message_feedback_unsynced] ON empl.message_feedback (updated_at) "
        "WHERE synced_at IS NULL" in sql
    )
    assert "[FK_message_feedback_message_id_messages]" in sql
