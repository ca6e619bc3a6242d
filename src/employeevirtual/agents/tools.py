"""Built-in tools an agent may be given, by name."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic_ai import ModelRetry, Tool

from employeevirtual.agents.arithmetic import MAX_EXPRESSION
from employeevirtual.agents.isolation import IsolatedError, IsolatedTimeout, run_isolated

__all__ = ["TOOLS", "calculator", "current_datetime"]

_TIME_LIMIT_SECONDS = 2.0


def current_datetime() -> str:
    """The current date and time in UTC, ISO 8601."""
    return datetime.now(UTC).isoformat(timespec="seconds")


async def calculator(expression: str) -> str:
    """Evaluate an arithmetic expression such as ``(2 + 3) * 4 / 7``.

    Only numbers, + - * / // % ** and parentheses; no names, calls or attributes.
    """
    if len(expression) > MAX_EXPRESSION:
        raise ModelRetry(f"expression longer than {MAX_EXPRESSION} characters")
    try:
        # arithmetic.evaluate bounds every intermediate (microseconds for any input); it still
        # runs in its own process with a hard time limit, should a bound ever be wrong
        result = await run_isolated(
            "employeevirtual.agents.arithmetic", expression, time_limit=_TIME_LIMIT_SECONDS
        )
    except (IsolatedError, IsolatedTimeout) as exc:
        raise ModelRetry(f"cannot evaluate {expression!r}: {exc}") from exc
    return str(result)


TOOLS: dict[str, Tool[Any]] = {
    "current_datetime": Tool(current_datetime, takes_ctx=False),
    "calculator": Tool(calculator, takes_ctx=False),
}
