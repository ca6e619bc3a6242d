"""``/api/memories``: what agents remember about the caller, under the caller's control."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import Depends, Query, Response, status

from employeevirtual.api.deps import CurrentUser, RuntimeDep, SettingsDep
from employeevirtual.api.memory_schemas import MemoriesDeleted, MemoryOut, MemoryPage, MemoryPatch
from employeevirtual.api.params import encode_cursor, page_size, parse_time_cursor
from employeevirtual.api.routing import Router
from employeevirtual.errors import Unavailable
from employeevirtual.memory.service import MemoryService

router = Router(prefix="/api/memories", tags=["memories"])


async def _memory(runtime: RuntimeDep) -> MemoryService:
    if runtime.memory is None:
        raise Unavailable("memory is turned off on this server (EV_MEMORY_ENABLED)")
    return runtime.memory


MemoryDep = Annotated[MemoryService, Depends(_memory)]
AgentFilter = Annotated[UUID | None, Query(description="only this agent's memories")]


@router.get("")
async def list_memories(
    user: CurrentUser,
    memory: MemoryDep,
    settings: SettingsDep,
    agent_id: AgentFilter = None,
    limit: int | None = None,
    cursor: str | None = None,
) -> MemoryPage:
    """The caller's memories, newest first; pass ``next_cursor`` back as ``cursor``."""
    size = page_size(limit, settings.page_limit_default, settings.page_limit_max)
    after = parse_time_cursor(cursor) if cursor else None
    rows, more = await memory.page(user.id, agent_id=agent_id, limit=size, after=after)
    next_cursor = (
        encode_cursor(rows[-1].created_at.isoformat(), str(rows[-1].id)) if more and rows else None
    )
    return MemoryPage(items=[MemoryOut.of(m) for m in rows], next_cursor=next_cursor)


@router.delete("")
async def delete_memories(
    user: CurrentUser, memory: MemoryDep, agent_id: AgentFilter = None
) -> MemoriesDeleted:
    """Forget every memory of the caller (or only those one agent keeps)."""
    return MemoriesDeleted(deleted=await memory.delete_all(user.id, agent_id=agent_id))


@router.patch("/{memory_id}")
async def update_memory(
    memory_id: UUID, body: MemoryPatch, user: CurrentUser, memory: MemoryDep
) -> MemoryOut:
    return MemoryOut.of(await memory.change(user.id, memory_id, content=body.content))


@router.delete("/{memory_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_memory(memory_id: UUID, user: CurrentUser, memory: MemoryDep) -> Response:
    await memory.delete(user.id, memory_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
