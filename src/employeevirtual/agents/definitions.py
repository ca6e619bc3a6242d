"""What an agent's definition may hold: the model, tool, instruction and knowledge-base rules
every entry point meets (the HTTP routes, the CLI, a worker), checked by ``AgentService``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from employeevirtual.agents.models import ModelRegistry, UnknownModelError
from employeevirtual.agents.tools import TOOLS
from employeevirtual.errors import InvalidInput
from employeevirtual.settings import Settings
from employeevirtual.stores.records import Visibility
from employeevirtual.stores.sql.agents import AgentChanges, NewAgent

__all__ = ["AgentDraft", "AgentRules"]

# a patch may leave these out, but not set them to null (the columns hold a value)
_NOT_NULL = ("name", "instructions", "visibility", "memory")


@dataclass(frozen=True, slots=True)
class AgentDraft:
    """A new agent as a caller asks for it: no model means the server's default model."""

    name: str
    instructions: str = ""
    model: str | None = None
    description: str | None = None
    model_settings: Mapping[str, Any] = field(default_factory=dict)
    tools: Sequence[str] = ()
    knowledge_base_ids: Sequence[UUID] = ()
    delegate_ids: Sequence[UUID] = ()  # who they are is the service's to check (issue 13)
    visibility: Visibility = "private"
    memory: Mapping[str, Any] = field(default_factory=dict)  # {"enabled", "shared"} (issue 18)


@dataclass(frozen=True, slots=True)
class AgentRules:
    models: ModelRegistry
    default_model: str = "offline"
    max_tools: int = 16
    max_instructions_chars: int = 20_000
    max_knowledge_bases: int = 10
    # ``server/tool`` names (MCP) are the service's tool check's to judge, not these rules'
    external_tools: bool = False

    @classmethod
    def from_settings(cls, settings: Settings, models: ModelRegistry) -> AgentRules:
        return cls(
            models=models,
            default_model=settings.default_model,
            max_tools=settings.max_tools_per_agent,
            max_instructions_chars=settings.max_instructions_chars,
            max_knowledge_bases=settings.knowledge_max_bases_per_agent,
        )

    def new_agent(self, draft: AgentDraft) -> NewAgent:
        """The draft checked and normalised (tools and bases once each, unset settings left
        out); the knowledge bases' visibility is the service's to check."""
        model = draft.model or self.default_model
        self._check_model(model)
        tools = self._tools(draft.tools)
        self._check_instructions(draft.instructions)
        return NewAgent(
            name=draft.name,
            description=draft.description,
            instructions=draft.instructions,
            model=model,
            model_settings=_set_only(draft.model_settings),
            tools=tools,
            visibility=draft.visibility,
            knowledge_base_ids=self._bases(draft.knowledge_base_ids),
            delegate_ids=list(dict.fromkeys(draft.delegate_ids)),
            memory=dict(draft.memory),
        )

    def changes(self, changes: AgentChanges) -> AgentChanges:
        """A patch checked like a draft; a null model means the default model again and null
        knowledge bases mean no change."""
        fixed: dict[str, Any] = {}
        if changes.model is not None:
            self._check_model(changes.model)
        if changes.tools is not None:
            fixed["tools"] = self._tools(changes.tools)
        if changes.instructions is not None:
            self._check_instructions(changes.instructions)
        if changes.model_settings is not None:
            fixed["model_settings"] = _set_only(changes.model_settings)
        if changes.knowledge_base_ids is not None:
            fixed["knowledge_base_ids"] = self._bases(changes.knowledge_base_ids)
        for name in _NOT_NULL:
            if name in changes.model_fields_set and getattr(changes, name) is None:
                raise InvalidInput(f"{name} cannot be null")
        if "model" in changes.model_fields_set and changes.model is None:
            fixed["model"] = self.default_model
        kept = changes.model_dump(exclude_unset=True)
        for name in ("knowledge_base_ids", "delegate_ids"):  # null: no change
            if name in kept and kept[name] is None:
                del kept[name]
        return AgentChanges(**{**kept, **fixed})

    def _check_model(self, model: str) -> None:
        try:
            self.models.check(model)
        except UnknownModelError as exc:
            raise InvalidInput(str(exc)) from None

    def _check_instructions(self, instructions: str) -> None:
        if len(instructions) > self.max_instructions_chars:
            raise InvalidInput(
                f"instructions are {len(instructions)} characters; "
                f"the limit is {self.max_instructions_chars}"
            )

    def _tools(self, wanted: Sequence[str]) -> list[str]:
        tools = list(dict.fromkeys(wanted))
        unknown = [t for t in tools if t not in TOOLS and not (self.external_tools and "/" in t)]
        if unknown:
            raise InvalidInput(
                f"unknown tools {unknown}; valid tools are: {', '.join(sorted(TOOLS))}"
            )
        if len(tools) > self.max_tools:
            raise InvalidInput(f"at most {self.max_tools} tools per agent")
        return tools

    def _bases(self, wanted: Sequence[UUID]) -> list[UUID]:
        bases = list(dict.fromkeys(wanted))
        if len(bases) > self.max_knowledge_bases:
            raise InvalidInput(f"at most {self.max_knowledge_bases} knowledge bases per agent")
        return bases


def _set_only(settings: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in settings.items() if v is not None}
