"""The built-in tools an agent may be given (the console's agent form lists them)."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from employeevirtual.agents.tools import TOOLS
from employeevirtual.api.deps import CurrentUser

router = APIRouter(prefix="/api/tools", tags=["agents"])


class ToolOut(BaseModel):
    name: str
    description: str


@router.get("")
async def list_tools(_user: CurrentUser) -> list[ToolOut]:
    """Names for an agent's ``tools``, with what each does."""
    return [
        ToolOut(name=name, description=(tool.description or "").split("\n\n")[0])
        for name, tool in sorted(TOOLS.items())
    ]
