"""The built-in ``offline`` model: keyless, deterministic, a demonstration of every path.

It streams its answer in word-sized chunks (``delay`` seconds apart), calls ``calculator`` when
the agent has it and the message holds an arithmetic expression, and ``current_datetime`` when
the agent has it and the message asks for the date or time, and ``search_knowledge`` when the
agent has knowledge bases, answering by quoting the best passage with its source; with memory,
"remember that ..." calls ``remember`` and "forget <id>" calls ``forget``; with colleagues
(``delegate_ids``), "ask <name>: <task>" asks that colleague (its ``ask_*`` tool). It is not an
AI model.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from typing import Any

from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelResponse,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
    UserPromptPart,
)
from pydantic_ai.models.function import AgentInfo, DeltaToolCall, DeltaToolCalls, FunctionModel

__all__ = ["OFFLINE_MODEL", "offline_model", "plan"]

OFFLINE_MODEL = "offline"

_NUMBER = r"\(*\s*-?\d+(?:\.\d+)?\s*\)*"
_EXPRESSION = re.compile(rf"{_NUMBER}(?:\s*(?:\*\*|//|[-+*/%])\s*{_NUMBER})+")
_DATE_WORDS = re.compile(
    r"\b(date|time|today|day is it|what day|hora|horas|data|hoje|que dia)\b", re.IGNORECASE
)
_WORDS = re.compile(r"\S+\s*")
# memory (issue 18): "remember that ...", "forget 1a2b3c4d" (a memory's id as it was shown)
_REMEMBER = re.compile(r"^\s*(?:please\s+)?remember(?:\s+that)?[:,]?\s+(.+)$", re.I | re.S)
_FORGET = re.compile(r"^\s*(?:please\s+)?forget\s+\[?([0-9a-f]{8})\]?", re.IGNORECASE)
# delegation (issue 13): "ask Billing: what is owed?" calls ask_billing_<id prefix>
_ASK = re.compile(r"^\s*(?:please\s+)?ask\s+([^:\n]{1,80}?)\s*:\s*(.+)$", re.I | re.S)
_ASK_PREFIX = "ask_"


def _slug(name: str) -> str:
    """As ``agents.team.delegate_tool_name`` makes it from an agent's name."""
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")[:40] or "agent"


def _last_prompt(messages: list[ModelMessage]) -> str:
    for message in reversed(messages):
        if isinstance(message, ModelRequest):
            for part in message.parts:
                if isinstance(part, UserPromptPart) and isinstance(part.content, str):
                    return part.content
    return ""


def _tool_returns(messages: list[ModelMessage]) -> list[ToolReturnPart]:
    last = messages[-1] if messages else None
    if not isinstance(last, ModelRequest):
        return []
    return [p for p in last.parts if isinstance(p, ToolReturnPart)]


_SEARCH_TOOL = "search_knowledge"  # agents/knowledge.py


def _quote(sources: Any, prompt: str) -> str:
    """Reading: the best passage the search returned, quoted, with its source."""
    if not isinstance(sources, list) or not sources:
        return (
            f"[offline model] I searched the knowledge bases for {prompt[:200]!r} and found "
            "nothing that answers it."
        )
    best = sources[0]
    passage = " ".join(str(best.get("passage", "")).split())
    if len(passage) > 600:
        passage = passage[:600] + "…"
    return (
        f'[offline model] From "{best.get("title")}" (document {best.get("document_id")}, '
        f'chunk {best.get("chunk_id")}, score {best.get("score")}): "{passage}"'
    )


def plan(messages: list[ModelMessage], info: AgentInfo) -> ToolCallPart | str:
    """The next step: a tool call, or the answer's text."""
    prompt = _last_prompt(messages)
    returns = _tool_returns(messages)
    if returns:
        r = returns[-1]
        if r.tool_name == _SEARCH_TOOL:
            return _quote(r.content, prompt)
        if r.tool_name == "calculator":
            return f"[offline model] The calculator says: {r.content}"
        if r.tool_name in ("remember", "forget"):
            return f"[offline model] My memory says: {r.model_response_str()}"
        if r.tool_name.startswith(_ASK_PREFIX):
            return f"[offline model] My colleague answered: {r.model_response_str()}"
        return f"[offline model] The current date and time (UTC) is {r.content}."
    tools = {t.name for t in info.function_tools}
    if "calculator" in tools:
        match = _EXPRESSION.search(prompt)
        if match:
            return ToolCallPart("calculator", {"expression": match.group(0).strip()})
    if "current_datetime" in tools and _DATE_WORDS.search(prompt):
        return ToolCallPart("current_datetime", {})
    if "remember" in tools and (match := _REMEMBER.match(prompt)):
        return ToolCallPart("remember", {"fact": match.group(1).strip()[:1000]})
    if "forget" in tools and (match := _FORGET.match(prompt)):
        return ToolCallPart("forget", {"memory_id": match.group(1)})
    if (match := _ASK.match(prompt)) and any(t.startswith(_ASK_PREFIX) for t in tools):
        wanted = f"{_ASK_PREFIX}{_slug(match.group(1))}_"
        for name in sorted(tools):
            if name.startswith(wanted):
                return ToolCallPart(name, {"task": match.group(2).strip()[:4000]})
    if _SEARCH_TOOL in tools and prompt.strip():
        return ToolCallPart(_SEARCH_TOOL, {"query": prompt[:1000]})
    turns = sum(1 for m in messages if isinstance(m, ModelRequest))
    preview = prompt if len(prompt) <= 200 else prompt[:200] + "…"
    return (
        f"[offline model] You said: {preview!r} (message {turns} of this conversation). "
        "I am EmployeeVirtual's built-in offline model and I do not call any AI provider. "
        "To talk to a real model, set the agent's model (for example 'openai-chat:gpt-4o-mini') "
        "and EV_OPENAI_API_KEY, or EV_OPENAI_BASE_URL for a local OpenAI-compatible server."
    )


def offline_model(*, delay: float = 0.0) -> FunctionModel:
    """The model; ``delay`` seconds between streamed words (EV_OFFLINE_STREAM_DELAY_MS)."""

    # async on purpose: Pydantic AI runs a sync FunctionModel function in a worker thread
    async def reply(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        step = plan(messages, info)
        part = TextPart(step) if isinstance(step, str) else step
        return ModelResponse(parts=[part], model_name=OFFLINE_MODEL)

    async def stream(
        messages: list[ModelMessage], info: AgentInfo
    ) -> AsyncIterator[str | DeltaToolCalls]:
        step = plan(messages, info)
        if isinstance(step, ToolCallPart):
            yield {
                0: DeltaToolCall(
                    name=step.tool_name, json_args=step.args_as_json_str(), tool_call_id=None
                )
            }
            return
        for i, word in enumerate(_WORDS.findall(step)):
            if i and delay > 0:
                await asyncio.sleep(delay)
            yield word

    return FunctionModel(reply, stream_function=stream, model_name=OFFLINE_MODEL)
