"""The knowledge search tool an agent with knowledge bases gets, and what a run keeps of it.

We give the model a tool rather than retrieving before every call: the model searches only
when the question needs the company's documents (not for "thanks"), writes the query itself
from the whole conversation (a follow-up such as "and in Portugal?" becomes a full question),
and may search again with other words. Each search and its passages are on the record as a
tool call and its result, replayed to the model on later turns like any tool result.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic_ai import RunContext, Tool

if TYPE_CHECKING:
    from employeevirtual.agents.memory import TurnMemory

__all__ = ["SEARCH_TOOL", "KnowledgeSearch", "RunDeps", "search_tool"]

SEARCH_TOOL = "search_knowledge"

# query -> sources (dicts with document_id, title, chunk_id, score, passage, ...), already
# limited to the bases the caller may read
KnowledgeSearch = Callable[[str], Awaitable[list[dict[str, Any]]]]


@dataclass
class RunDeps:
    """Per run: how to search, and every search made (query and the sources it returned);
    the turn's memory (None: the run is not offered ``remember``/``forget``)."""

    search: KnowledgeSearch | None = None
    searches: list[dict[str, Any]] = field(default_factory=list)
    memory: TurnMemory | None = None

    @property
    def sources(self) -> list[dict[str, Any]]:
        """Each passage the model was shown, once, in the order first seen."""
        seen: dict[str, dict[str, Any]] = {}
        for search in self.searches:
            for source in search["sources"]:
                seen.setdefault(source["chunk_id"], source)
        return list(seen.values())


async def search_knowledge(ctx: RunContext[RunDeps], query: str) -> list[dict[str, Any]]:
    """Search the company's documents (this agent's knowledge bases) for passages that answer
    ``query``. Returns the best passages, each with its document title, ids and score. Quote
    the passages you use and name their document titles."""
    if ctx.deps is None or ctx.deps.search is None:
        return []
    sources = await ctx.deps.search(query[:1000])
    ctx.deps.searches.append({"query": query[:1000], "sources": sources})
    return sources


def search_tool() -> Tool[RunDeps]:
    return Tool(search_knowledge, takes_ctx=True, name=SEARCH_TOOL, max_retries=1)
