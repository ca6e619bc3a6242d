"""The person's knowledge bases as a personal-data source: erased through the knowledge
service's own delete (rows, the engine's chunks and vectors, the stored files). Their rows are
exported by the exporter from SQL (``knowledge_bases``, ``knowledge_documents``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncEngine

from employeevirtual.knowledge.service import KnowledgeService
from employeevirtual.stores.sql.engine import read_connection
from employeevirtual.stores.sql.erasure_jobs import ErasureReader
from employeevirtual.stores.sql.users import UserReader

__all__ = ["KnowledgeSource"]


@dataclass(frozen=True, slots=True)
class KnowledgeSource:
    engine: AsyncEngine
    knowledge: KnowledgeService
    name: str = ""  # exported from SQL by the exporter itself

    async def export(self, user_id: UUID) -> AsyncIterator[dict[str, Any]]:
        for _ in ():
            yield {}

    async def erase(self, user_id: UUID) -> None:
        async with read_connection(self.engine) as conn:
            user = await UserReader(conn).get(user_id)
            bases = await ErasureReader(conn).knowledge_base_ids(user_id)
        if user is None:
            return
        for base_id in bases:
            await self.knowledge.delete_base(user, base_id, client_ip=None)
        if self.knowledge.unavailable is None:
            await self.knowledge.index.purge_deleted()
