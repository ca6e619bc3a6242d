"""The relational schema ``empl``: the seed's tables and columns, plus what the service needs,
one module per part of the product. Importing this package registers every table on
``metadata`` (migrations and the schema checks need them all).
"""

from __future__ import annotations

from employeevirtual.stores.sql.tables.analytics import budgets, message_feedback
from employeevirtual.stores.sql.tables.knowledge import knowledge_bases, knowledge_documents
from employeevirtual.stores.sql.tables.mcp import mcp_servers
from employeevirtual.stores.sql.tables.memory import conversation_summaries, memories
from employeevirtual.stores.sql.tables.people import erasure_jobs, export_jobs
from employeevirtual.stores.sql.tables.schema import SCHEMA, metadata
from employeevirtual.stores.sql.tables.seed import agents, audit_log, conversations, messages, users
from employeevirtual.stores.sql.tables.service import (
    api_keys,
    claims,
    idempotency_keys,
    server_instances,
)

__all__ = [
    "SCHEMA",
    "agents",
    "api_keys",
    "audit_log",
    "budgets",
    "claims",
    "conversation_summaries",
    "conversations",
    "erasure_jobs",
    "export_jobs",
    "idempotency_keys",
    "knowledge_bases",
    "knowledge_documents",
    "mcp_servers",
    "memories",
    "message_feedback",
    "messages",
    "metadata",
    "server_instances",
    "users",
]
