"""The calculator: results too large are refused before they are computed, every intermediate is
bounded, and the work runs in its own process with a hard time limit, so one chat message cannot
freeze the server (issue 8, item 1)."""

from __future__ import annotations

import asyncio
import itertools
import time
from pathlib import Path

import httpx
import pytest
from pydantic_ai import ModelRetry
from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelResponse,
    RetryPromptPart,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
    UserPromptPart,
)
from pydantic_ai.models.function import AgentInfo, FunctionModel

from employeevirtual.agents.arithmetic import MAX_BITS, TooLarge, evaluate
from employeevirtual.agents.isolation import IsolatedTimeout, run_isolated
from employeevirtual.agents.tools import calculator
from employeevirtual.settings import Settings
from support.api import create_agent, register_and_login
from support.server import serving

HOSTILE = "(((9**99)**99)**99)**99"
TESTS = Path(__file__).resolve().parents[1]
CALC_MODEL = "openai-chat:calc-forwarder"


@pytest.mark.parametrize(
    "expression",
    [HOSTILE, "9**99**99", "2**5000", "(2**4000)*(2**4000)", "(10**1000)**5", "-(7**9999)"],
)
def test_huge_results_are_refused_before_computing(expression: str) -> None:
    started = time.process_time()
    with pytest.raises(TooLarge, match="too large"):
        evaluate(expression)
    assert time.process_time() - started < 1  # CPU time: refused, not computed


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("(2 + 3) * 4 / 8", "2.5"),
        ("2**4000 // 2**3999", "2"),
        ("7 % 3 - -1", "2"),
        ("1**(10**100)", "1"),
        ("(-1)**(10**100 + 1)", "-1"),
        ("2**-2", "0.25"),
    ],
)
def test_ordinary_arithmetic_still_works(expression: str, expected: str) -> None:
    assert evaluate(expression) == expected


def test_every_accepted_integer_stays_within_the_bound() -> None:
    # the largest products and powers the bound lets through are near MAX_BITS, never past it
    for expression in ("2**4095", "(2**2000)*(2**2000)", "3**2584", "(2**4000)+(2**4000)"):
        assert int(evaluate(expression)).bit_length() <= MAX_BITS


async def test_the_tool_refuses_at_once_through_its_process() -> None:
    with pytest.raises(ModelRetry, match="too large"):
        await calculator(HOSTILE)
    assert await calculator("6*7") == "42"
    with pytest.raises(ModelRetry, match="complex"):
        await calculator("(-8)**0.5")


async def test_isolated_work_is_killed_at_its_time_limit() -> None:
    # support/runaway.py burns CPU forever: the stand-in for a computation a bound missed
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(IsolatedTimeout):
        await run_isolated("support.runaway", "x", time_limit=0.5, path=str(TESTS))
    assert loop.time() - started < 10
    assert await run_isolated("employeevirtual.agents.arithmetic", "6*7", time_limit=10) == "42"


def _forward_to_calculator(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    """A model that hands the user's text to the calculator, then reports the tool's answer."""
    last = messages[-1]
    assert isinstance(last, ModelRequest)
    for part in last.parts:
        if isinstance(part, UserPromptPart):
            return ModelResponse(parts=[ToolCallPart("calculator", {"expression": part.content})])
        if isinstance(part, RetryPromptPart):
            return ModelResponse(parts=[TextPart(f"tool refused: {part.model_response()}")])
        if isinstance(part, ToolReturnPart):
            return ModelResponse(parts=[TextPart(f"tool said: {part.model_response_str()}")])
    return ModelResponse(parts=[TextPart("?")])


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_one_message_cannot_freeze_the_server(settings: Settings) -> None:
    async with serving(settings) as (base, app), httpx.AsyncClient(base_url=base) as c:
        app.state.runtime.models.override(CALC_MODEL, FunctionModel(_forward_to_calculator))
        headers = await register_and_login(c)
        agent = await create_agent(c, headers, model=CALC_MODEL, tools=["calculator"])
        probes: list[float] = []
        done = asyncio.Event()

        async def probe_liveness() -> None:
            async with httpx.AsyncClient(base_url=base) as prober:
                while not done.is_set():
                    started = time.perf_counter()
                    r = await prober.get("/health/live")
                    assert r.status_code == 200
                    probes.append(time.perf_counter() - started)
                    await asyncio.sleep(0.02)

        prober = asyncio.create_task(probe_liveness())
        try:
            r = await c.post(
                "/api/chat/agent",
                json={"message": HOSTILE, "agent_id": agent["id"]},
                headers=headers,
                timeout=60,
            )
        finally:
            done.set()
            await prober
        assert r.status_code == 200, r.text
        assert "too large" in r.json()["agent_message"]["content"]
    assert len(probes) >= 3, f"too few liveness probes while the turn ran: {probes}"
    # /health/live answered under 100 ms throughout. A loaded 2-core runner can delay a single
    # probe by scheduling alone, so "throughout" is judged as: never two slow probes in a row
    # (a held loop or GIL makes every probe slow, for the whole computation), and none slow
    # enough to be a stall (the original freeze lasted over 90 s).
    slow_in_a_row = [a > 0.1 and b > 0.1 for a, b in itertools.pairwise(probes)]
    assert not any(slow_in_a_row), probes
    assert max(probes) < 1.0, probes


def test_tool_functions_are_async_or_trivial() -> None:
    # no built-in tool runs in a worker thread, where a long computation would hold the GIL
    from employeevirtual.agents.tools import TOOLS

    for name, tool in TOOLS.items():
        assert asyncio.iscoroutinefunction(tool.function) or name == "current_datetime", name
