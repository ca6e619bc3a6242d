"""The tools an agent may be given (the console's agent form lists them): the built-in ones
and ``server/tool`` on the MCP servers made available to the caller."""

from __future__ import annotations

from pydantic import BaseModel

from employeevirtual.agents.tools import TOOLS
from employeevirtual.api.deps import CurrentUser, RuntimeDep
from employeevirtual.api.routing import Router

router = Router(prefix="/api/tools", tags=["agents"])


class ToolOut(BaseModel):
    name: str
    description: str


@router.get("")
async def list_tools(user: CurrentUser, runtime: RuntimeDep) -> list[ToolOut]:
    """Names for an agent's ``tools``, with what each does."""
    builtin = [
        ToolOut(name=name, description=(tool.description or "").split("\n\n")[0])
        for name, tool in sorted(TOOLS.items())
    ]
    mcp = await runtime.mcp.tool_names(user)
    return builtin + [ToolOut(name=n, description=d) for n, d in sorted(mcp.items())]
