"""Where an MCP server may be reached: an allowlist of hosts and ports, and never loopback,
private, link-local or reserved addresses unless the operator allows them.

Every HTTP request an MCP client sends goes through ``GuardedTransport``, which checks its URL
(the host resolved, each address checked) before it leaves: a redirect is a new request, so a
redirect off the allowlist is refused like any other URL.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx2

from employeevirtual.security.outbound import OutboundRefused, check_outbound_url

__all__ = ["GuardedTransport", "NetworkPolicy", "OutboundRefused", "StdioPolicy"]

_DEFAULT_PORTS = {"http": 80, "https": 443}


def _entry(text: str) -> tuple[str, int | None]:
    """``host``, ``host:port`` or ``[v6]:port`` -> (host, port or None for any port)."""
    parts = urlsplit(f"//{text.strip()}")
    host = (parts.hostname or "").lower()
    if not host:
        raise ValueError(f"EV_MCP_ALLOWED_HOSTS: {text!r} names no host")
    return host, parts.port


@dataclass(frozen=True)
class NetworkPolicy:
    allowed: tuple[tuple[str, int | None], ...]
    allow_private: bool = False

    @classmethod
    def of(cls, entries: Sequence[str], *, allow_private: bool) -> NetworkPolicy:
        return cls(tuple(_entry(e) for e in entries), allow_private)

    def check_syntax(self, url: str) -> None:
        """Scheme, credentials, host and port against the allowlist (no DNS)."""
        parts = urlsplit(url)
        if parts.scheme not in _DEFAULT_PORTS:
            raise OutboundRefused(f"{url!r}: an MCP server URL must be http or https")
        if parts.username or parts.password:
            raise OutboundRefused("credentials in the URL are not allowed; use a header")
        host = (parts.hostname or "").lower()
        if not host:
            raise OutboundRefused(f"{url!r} has no host")
        try:
            port = parts.port or _DEFAULT_PORTS[parts.scheme]
        except ValueError:
            raise OutboundRefused(f"{url!r} has an invalid port") from None
        if not self.allowed:
            raise OutboundRefused(
                "no MCP server host is allowed: list host or host:port entries in "
                "EV_MCP_ALLOWED_HOSTS"
            )
        if not any(h == host and (p is None or p == port) for h, p in self.allowed):
            raise OutboundRefused(f"{host}:{port} is not in EV_MCP_ALLOWED_HOSTS")

    async def check(self, url: str) -> None:
        """The syntax check, then every address the host resolves to (unless private
        addresses are allowed)."""
        self.check_syntax(url)
        try:
            await check_outbound_url(url, allowed_hosts=(), allow_private=self.allow_private)
        except OutboundRefused as exc:
            raise OutboundRefused(str(exc).replace("EV_OUTBOUND_", "EV_MCP_")) from None


class GuardedTransport(httpx2.AsyncBaseTransport):
    """An HTTP transport that checks every request's URL against the policy first."""

    def __init__(self, policy: NetworkPolicy, *, inner: httpx2.AsyncBaseTransport | None = None):
        self.policy = policy
        self.inner = inner or httpx2.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        try:
            await self.policy.check(str(request.url))
        except OutboundRefused as exc:
            message = f"refused by the MCP network rules: {exc}"
            raise httpx2.ConnectError(message, request=request) from None
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


@dataclass(frozen=True)
class StdioPolicy:
    """The exact command lines an admin may register as a stdio server."""

    commands: tuple[tuple[str, ...], ...]

    @classmethod
    def of(cls, lines: Sequence[str]) -> StdioPolicy:
        return cls(tuple(tuple(shlex.split(line)) for line in lines if line.strip()))

    def check(self, command: str, args: Sequence[str]) -> None:
        wanted = (command, *args)
        if not self.commands:
            raise OutboundRefused(
                "no stdio MCP server is allowed: list its command line in EV_MCP_STDIO_COMMANDS"
            )
        if wanted not in self.commands:
            raise OutboundRefused(
                f"the command {shlex.join(wanted)!r} is not listed in EV_MCP_STDIO_COMMANDS"
            )
