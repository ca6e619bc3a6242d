"""An agent's run for one caller and turn: what it may search (knowledge bases the caller may
read), call (MCP servers the caller may use), remember (its memory, issue 18) and reach (its
team, issue 13). A failed run is a value, recorded like an answer."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncEngine

from employeevirtual.agents.knowledge import KnowledgeSearch
from employeevirtual.agents.runner import AgentFailure, AgentRunner, EventSink, RunOutcome
from employeevirtual.agents.team import Team
from employeevirtual.chat.team import resolve_team
from employeevirtual.knowledge.service import KnowledgeService
from employeevirtual.mcp.service import McpService
from employeevirtual.memory.service import MemoryService
from employeevirtual.stores.records import AgentRecord, ConversationRecord, MessageRecord

__all__ = ["AgentRuns", "recorded"]


async def recorded(run: Awaitable[RunOutcome]) -> RunOutcome | AgentFailure:
    """``run``'s outcome, or its failure returned, to be recorded like an answer."""
    try:
        return await run
    except AgentFailure as failure:
        return failure


class AgentRuns:
    def __init__(
        self,
        *,
        engine: AsyncEngine,
        runner: AgentRunner,
        knowledge: KnowledgeService | None = None,
        mcp: McpService | None = None,
        memory: MemoryService | None = None,
        delegation_depth: int = 3,
        handoffs_per_turn: int = 2,
    ) -> None:
        """``delegation_depth``, ``handoffs_per_turn``: the bounds of a turn's team."""
        self.engine = engine
        self.runner = runner
        self.knowledge = knowledge
        self.mcp = mcp
        self.memory = memory
        self.delegation_depth = delegation_depth
        self.handoffs_per_turn = handoffs_per_turn

    async def start(
        self,
        user_id: UUID,
        agent: AgentRecord,
        message: str,
        history: list[MessageRecord],
        conversation: ConversationRecord | None,
        *,
        on_event: EventSink | None = None,
    ) -> RunOutcome:
        """The run itself; ``AgentFailure`` raised (``recorded`` returns it instead; a streamed
        turn cancels and catches it)."""
        memory = (  # what the agent remembers for this turn: None when it keeps none
            await self.memory.prepare(user_id, agent, conversation, message)
            if self.memory is not None
            else None
        )
        return await self.runner.run(
            agent,
            message,
            history,
            on_event=on_event,
            knowledge=self.knowledge_for(user_id, agent),
            instructions=memory.instructions if memory else None,
            toolsets=await self.toolsets_for(user_id, agent),
            memory=memory,
            team=await self.team_for(user_id, agent),
        )

    async def team_for(self, user_id: UUID, agent: AgentRecord) -> Team | None:
        """The agents ``agent`` may ask or hand over to, for this caller (``chat.team``)."""
        return await resolve_team(
            self.engine,
            user_id,
            agent,
            max_depth=self.delegation_depth,
            max_handoffs=self.handoffs_per_turn,
            knowledge_for=lambda member: self.knowledge_for(user_id, member),
            tools_for=lambda member: self.toolsets_for(user_id, member),
        )

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
