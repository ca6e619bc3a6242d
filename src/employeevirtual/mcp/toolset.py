"""The MCP tools one run may call, each call bounded.

The model sees the tools as the admin's last refresh described them (names, descriptions and
argument schemas pinned in the catalog, not re-read from the server each turn), so listing
needs no network and a down server costs nothing until a tool of it is called. Every call:
a session of its own (or the server's kept-alive stdio child), one time limit over connecting
and calling, a cap on calls per run, and a cap on the result's size. Whatever goes wrong fails
that one call with a message the model sees (``ToolFailed``); the run goes on.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx
from pydantic_ai import RunContext, ToolDefinition
from pydantic_ai.exceptions import ToolFailed
from pydantic_ai.toolsets import AbstractToolset, ToolsetTool
from pydantic_core import SchemaValidator, core_schema

from employeevirtual.mcp.connect import Connections
from employeevirtual.mcp.network import OutboundRefused
from employeevirtual.mcp.secrets import SecretsUnavailable
from employeevirtual.stores.sql.mcp_servers import McpServerRecord

__all__ = ["McpTool", "McpToolset", "model_name"]

log = logging.getLogger(__name__)

_ANY_ARGS = SchemaValidator(core_schema.dict_schema())
_NOT_NAME = re.compile(r"[^A-Za-z0-9_-]")
_GRACE_SECONDS = 1.0  # the outer limit, past the MCP request's own


def model_name(server: str, tool: str) -> str:
    """``server/tool`` as the model calls it (providers allow ``[A-Za-z0-9_-]{1,64}``)."""
    return _NOT_NAME.sub("_", f"{server}__{tool}")[:64]


@dataclass(frozen=True, slots=True)
class McpTool:
    server: McpServerRecord
    name: str  # the tool's own name on its server
    description: str
    input_schema: dict[str, Any]

    @property
    def model_name(self) -> str:
        return model_name(self.server.name, self.name)


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, ensure_ascii=False, default=lambda _: "[binary content omitted]")
    except (TypeError, ValueError):
        return str(value)


def _is_timeout(exc: BaseException) -> bool:
    """A transport's own time limit: httpx's ``ReadTimeout`` (whose text is empty), the MCP
    client's "timed out" error, or either inside an exception group."""
    if isinstance(exc, BaseExceptionGroup):
        return any(_is_timeout(e) for e in exc.exceptions)
    if isinstance(exc, TimeoutError | httpx.TimeoutException):
        return True
    return "timed out" in str(exc).lower() or "timeout" in type(exc).__name__.lower()


def _short(message: str, limit: int = 500) -> str:
    message = " ".join(message.split())
    return message if len(message) <= limit else message[:limit] + "…"


class McpToolset(AbstractToolset[Any]):
    """Built per run: its call counter is the run's."""

    def __init__(
        self,
        tools: Sequence[McpTool],
        *,
        connections: Connections,
        max_calls: int,
        result_chars: int,
        call_timeout: float,
    ) -> None:
        self.tools = {t.model_name: t for t in tools}
        self.connections = connections
        self.max_calls = max_calls
        self.result_chars = result_chars
        self.call_timeout = call_timeout
        self.calls = 0
        self.timings: list[float] = []  # seconds per call, for the benchmark

    @property
    def id(self) -> str | None:
        return "mcp"

    async def get_tools(self, ctx: RunContext[Any]) -> dict[str, ToolsetTool[Any]]:
        return {
            name: ToolsetTool(
                toolset=self,
                tool_def=ToolDefinition(
                    name=name,
                    description=f"[{t.server.name}] {t.description}".strip(),
                    parameters_json_schema=t.input_schema or {"type": "object"},
                ),
                max_retries=1,
                args_validator=_ANY_ARGS,
            )
            for name, t in self.tools.items()
        }

    async def call_tool(
        self, name: str, tool_args: dict[str, Any], ctx: RunContext[Any], tool: ToolsetTool[Any]
    ) -> str:
        await self.connections.load()  # before the time limit (FastMCP imports at first use)
        from fastmcp.exceptions import ToolError

        chosen = self.tools[name]
        server = chosen.server.name
        self.calls += 1
        if self.calls > self.max_calls:
            raise ToolFailed(
                f"this answer already made {self.max_calls} MCP tool calls, the limit per turn; "
                "answer with what you have"
            )
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self.call_timeout + _GRACE_SECONDS):
                async with self.connections.session(chosen.server) as session:
                    value = await session.direct_call_tool(chosen.name, tool_args)
        except TimeoutError:
            await self._drop_child(chosen.server)
            raise ToolFailed(
                f"the MCP server {server!r} did not answer within {self.call_timeout:g} s"
            ) from None
        except OutboundRefused as exc:
            raise ToolFailed(f"the MCP server {server!r} may not be reached: {exc}") from None
        except SecretsUnavailable as exc:
            log.warning("MCP server %s: %s", server, exc)
            raise ToolFailed(
                f"the MCP server {server!r} is not usable on this server now (its secrets "
                "cannot be read); tell the user to ask an administrator"
            ) from None
        except ToolError as exc:
            raise ToolFailed(f"the tool {chosen.name!r} failed: {_short(str(exc))}") from None
        except Exception as exc:  # a broken server fails this call, never the run
            detail = _short(str(exc)) or type(exc).__name__
            log.warning(
                "MCP server %s, tool %s: %s: %s", server, chosen.name, type(exc).__name__, detail
            )
            if _is_timeout(exc):
                await self._drop_child(chosen.server)
                detail = f"no answer within {self.call_timeout:g} s"
            raise ToolFailed(f"the MCP server {server!r} failed: {detail}") from None
        finally:
            self.timings.append(time.perf_counter() - started)
        text = _text(value)
        if len(text) > self.result_chars:
            text = (
                text[: self.result_chars]
                + f"\n[truncated: the result was {len(text)} characters; only the first "
                f"{self.result_chars} are shown]"
            )
        return text

    async def _drop_child(self, server: McpServerRecord) -> None:
        """After a stdio call that timed out: stop the server's child, so the next call starts a
        fresh one. A child may have gone deaf (the MCP client stops reading a child's
        stdout for good once it wrote bytes that are not UTF-8, and every later call would wait
        out its limit), or still be busy with a hung call; either way a new child is the cure.
        Calls other turns had in flight on that child fail with it."""
        if server.transport == "stdio":
            await self.connections.forget(server.id)
