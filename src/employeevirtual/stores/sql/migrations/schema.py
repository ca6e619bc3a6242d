"""What several migrations need: the real name of the ``empl`` schema on this connection."""

from __future__ import annotations

from alembic import op

__all__ = ["real_schema"]

S = "empl"


def real_schema() -> str | None:
    """The schema ``empl`` is mapped to. Alembic renders ``ALTER TABLE`` (and a migration's own
    SQL) without the engine's ``schema_translate_map`` (which maps ``empl`` to the configured
    schema, and away on SQLite, as None): a migration names it with this. In offline rendering
    (the SQL Server DDL check) it is the schema as named."""
    if op.get_context().as_sql:
        return S
    translate = op.get_bind().get_execution_options().get("schema_translate_map") or {}
    return translate.get(S, S)  # type: ignore[no-any-return]
