"""The schema ``empl`` and the naming convention of its constraints and indexes.

SQLite has no schemas; the engine maps ``empl`` away with ``schema_translate_map``.
"""

from __future__ import annotations

from sqlalchemy import MetaData

__all__ = ["SCHEMA", "metadata"]

SCHEMA = "empl"

metadata = MetaData(
    schema=SCHEMA,
    naming_convention={
        "ix": "IX_%(table_name)s_%(column_0_N_name)s",
        "uq": "UQ_%(table_name)s_%(column_0_N_name)s",
        "ck": "CK_%(table_name)s_%(constraint_name)s",
        "fk": "FK_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "PK_%(table_name)s",
    },
)
