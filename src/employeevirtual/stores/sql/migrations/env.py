"""Alembic environment: online through the app's engine, offline for any dialect's SQL.

The schema (``empl``, or the name the engine maps it to) is made here, before Alembic's own
version table, which lives in it too.
"""

from __future__ import annotations

from alembic import context

from employeevirtual.stores.sql.tables import SCHEMA, metadata

config = context.config


def _create_schema_sql(dialect: str, name: str) -> str | None:
    if dialect == "sqlite":
        return None
    if dialect == "mssql":
        return f"IF SCHEMA_ID(N'{name}') IS NULL EXEC(N'CREATE SCHEMA [{name}]')"
    return f'CREATE SCHEMA IF NOT EXISTS "{name}"'


def run_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=metadata,
        literal_binds=True,
        version_table_schema=SCHEMA,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        statement = _create_schema_sql(context.get_context().dialect.name, SCHEMA)
        if statement:
            context.execute(statement)
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes["connection"]
    translate = connection.get_execution_options().get("schema_translate_map") or {}
    # Alembic looks its version table up without the translate map: give it the real name
    schema = translate.get(SCHEMA, SCHEMA)
    statement = _create_schema_sql(connection.dialect.name, schema) if schema else None
    if statement:
        connection.exec_driver_sql(statement)
    context.configure(connection=connection, target_metadata=metadata, version_table_schema=schema)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
