"""What one turn gets from memory: the instructions that hand the model its memories and the
conversation's summary, and the built-in ``remember`` and ``forget`` tools.

The tools are the agent's own (``agents.memory.memory_tools``, added when its spec keeps
memory, like the knowledge search): a run reaches its turn's ``MemoryTurn`` through
``RunDeps.memory``; what the model is told they do is said there.

The tools decide and answer; they write nothing. Their calls and results are part of the turn's
record (the agent message's ``tool_calls``), and the chat service applies the accepted ones in
the turn's own SQL transaction (``MemoryService.apply``), so a memory exists exactly when the
message that saved it was committed, and names that message as its source.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from pydantic_ai import ModelRetry

from employeevirtual.agents.memory import FORGET_TOOL, MEMORY_TOOLS, REMEMBER_TOOL
from employeevirtual.stores.sql.memory import MemoryRecord, MemoryScope
from employeevirtual.stores.sql.summaries import SummaryRecord

__all__ = ["FORGET_TOOL", "MEMORY_TOOLS", "REMEMBER_TOOL", "MemoryTurn", "normalized"]

SHORT_ID = 8  # the id prefix shown to the model


def normalized(text: str) -> str:
    return " ".join(text.split())


@dataclass
class MemoryTurn:
    scope: MemoryScope
    memories: list[MemoryRecord]  # every memory of the scope
    given: list[MemoryRecord]  # those the model is shown this turn
    summary: SummaryRecord | None
    max_count: int
    max_chars: int
    max_calls: int
    calls: int = 0
    saved: dict[str, str] = field(default_factory=dict)  # id -> text, this turn
    forgotten: set[str] = field(default_factory=set)

    # -- what the model is told ---------------------------------------------------------------

    @property
    def instructions(self) -> str | None:
        """None while there is nothing to give (the tools' descriptions say how to use them)."""
        if not self.given and (self.summary is None or not self.summary.content):
            return None
        parts = [
            "You have a memory about the person you are talking with. Use `remember` to keep "
            "a short fact or preference they would want you to know in later conversations "
            "(not for things that only matter now), and `forget` with a memory's id when they "
            "ask you to forget it or it is no longer true."
        ]
        if self.given:
            lines = [f"- [{m.id.hex[:SHORT_ID]}] {m.content}" for m in self.given]
            more = len(self.memories) - len(self.given)
            note = f" ({more} more not shown: the most relevant are)" if more > 0 else ""
            parts.append("What you remember about them" + note + ":\n" + "\n".join(lines))
        if self.summary is not None and self.summary.content:
            parts.append(
                f"Summary of this conversation's earlier messages (1 to "
                f"{self.summary.covered_seq}; the most recent messages follow it in full):\n"
                + self.summary.content
            )
        return "\n\n".join(parts)

    # -- the tools ------------------------------------------------------------------------------

    def _count(self) -> int:
        return len(self.memories) + len(self.saved) - len(self.forgotten)

    def _refused(self, reason: str) -> dict[str, Any]:
        return {"status": "refused", "reason": reason}

    async def remember(self, fact: str) -> dict[str, Any]:
        """The ``remember`` tool (``agents.memory``): a decision, nothing written here."""
        text = normalized(fact)
        if not text:
            raise ModelRetry("the fact is empty; give the fact to remember")
        if self.calls >= self.max_calls:
            return self._refused(f"at most {self.max_calls} memory changes per turn")
        if len(text) > self.max_chars:
            return self._refused(f"longer than {self.max_chars} characters; say it shorter")
        for memory in self.memories:
            if normalized(memory.content).lower() == text.lower():
                return {"status": "exists", "id": str(memory.id)}
        if self._count() >= self.max_count:
            return self._refused(
                f"memory is full ({self.max_count} memories); forget one that no longer "
                "matters first"
            )
        self.calls += 1
        memory_id = str(uuid.uuid4())
        self.saved[memory_id] = text
        return {"status": "saved", "id": memory_id}

    async def forget(self, memory_id: str) -> dict[str, Any]:
        """The ``forget`` tool (``agents.memory``): a decision, nothing written here."""
        wanted = memory_id.strip().strip("[]").lower().replace("-", "")
        if self.calls >= self.max_calls:
            return self._refused(f"at most {self.max_calls} memory changes per turn")
        found = [
            str(m.id)
            for m in self.memories
            if wanted and m.id.hex.startswith(wanted) and str(m.id) not in self.forgotten
        ]
        found += [i for i in self.saved if wanted and uuid.UUID(i).hex.startswith(wanted)]
        if len(found) != 1:
            return {"status": "not_found", "reason": f"no single memory has the id {memory_id!r}"}
        self.calls += 1
        if found[0] in self.saved:
            del self.saved[found[0]]
        else:
            self.forgotten.add(found[0])
        return {"status": "forgotten", "id": found[0]}
