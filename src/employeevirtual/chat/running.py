"""An agent's run for one caller: what it may search (knowledge bases the caller may read) and
call (MCP servers the caller may use). A failed run is a value, recorded like an answer."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from employeevirtual.agents.knowledge import KnowledgeSearch
from employeevirtual.agents.runner import AgentFailure, AgentRunner, EventSink, RunOutcome
from employeevirtual.knowledge.service import KnowledgeService
from employeevirtual.mcp.service import McpService
from employeevirtual.stores.records import AgentRecord, MessageRecord

__all__ = ["AgentRuns"]


class AgentRuns:
    def __init__(
        self,
        runner: AgentRunner,
        *,
        knowledge: KnowledgeService | None = None,
        mcp: McpService | None = None,
    ) -> None:
        self.runner = runner
        self.knowledge = knowledge
        self.mcp = mcp

    async def start(
        self,
        user_id: UUID,
        agent: AgentRecord,
        message: str,
        history: list[MessageRecord],
        *,
        on_event: EventSink | None = None,
    ) -> RunOutcome:
        """The run itself; ``AgentFailure`` raised (a streamed turn cancels and catches it)."""
        return await self.runner.run(
            agent,
            message,
            history,
            on_event=on_event,
            knowledge=self.knowledge_for(user_id, agent),
            toolsets=await self.toolsets_for(user_id, agent),
        )

    async def run(
        self, user_id: UUID, agent: AgentRecord, message: str, history: list[MessageRecord]
    ) -> RunOutcome | AgentFailure:
        """The run; a failure is returned, to be recorded like an answer."""
        try:
            return await self.start(user_id, agent, message, history)
        except AgentFailure as failure:
            return failure

    async def toolsets_for(self, user_id: UUID, agent: AgentRecord) -> list[Any]:
        """The run's MCP tools: the agent's ``server/tool`` names on servers this caller may
        use (``mcp.service``), each call bounded."""
        if self.mcp is None:
            return []
        toolset = await self.mcp.toolset_for(user_id, agent.tools)
        return [] if toolset is None else [toolset]

    def knowledge_for(self, user_id: UUID, agent: AgentRecord) -> KnowledgeSearch | None:
        """The agent's knowledge search for this caller: only bases the caller may read
        (their own or shared) are handed to the engine's query."""
        knowledge = self.knowledge
        if knowledge is None or knowledge.unavailable is not None or not agent.knowledge_base_ids:
            return None  # the agent's search then finds nothing; the turn still runs
        base_ids = list(agent.knowledge_base_ids)

        async def search(query: str) -> list[dict[str, Any]]:
            passages = await knowledge.search(user_id, base_ids, query)
            return [p.as_source() for p in passages]

        return search
