"""Outbound URLs (webhooks, and any other call to a URL an operator or admin configured):
http(s) only, an optional host allowlist, and never loopback, private, link-local or reserved
addresses unless the operator allows them. The host is resolved and every address checked."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Sequence
from urllib.parse import urlsplit

__all__ = ["OutboundRefused", "check_outbound_url", "check_outbound_url_syntax"]


class OutboundRefused(ValueError):
    """The URL may not be called; the message says why."""


def check_outbound_url_syntax(url: str, *, allowed_hosts: Sequence[str]) -> str:
    """Scheme, host and allowlist (no DNS); returns the host."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise OutboundRefused(f"{url!r}: only http and https URLs may be called")
    host = (parts.hostname or "").lower()
    if not host:
        raise OutboundRefused(f"{url!r} has no host")
    if parts.username or parts.password:
        raise OutboundRefused("credentials in the URL are not allowed; use a header")
    if allowed_hosts and host not in {h.lower() for h in allowed_hosts}:
        raise OutboundRefused(f"host {host!r} is not in EV_OUTBOUND_ALLOWED_HOSTS")
    return host


def _public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    return not (
        ip.is_loopback
        or ip.is_private
        or ip.is_link_local
        or ip.is_reserved
        or ip.is_multicast
        or ip.is_unspecified
    )


async def check_outbound_url(
    url: str, *, allowed_hosts: Sequence[str], allow_private: bool
) -> None:
    """Raise ``OutboundRefused`` unless ``url`` may be called now."""
    host = check_outbound_url_syntax(url, allowed_hosts=allowed_hosts)
    if allow_private:
        return
    port = urlsplit(url).port or 443
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise OutboundRefused(f"host {host!r} does not resolve: {exc}") from None
    for info in infos:
        address = str(info[4][0])
        if not _public(address):
            raise OutboundRefused(
                f"host {host!r} resolves to {address}, a loopback/private/reserved address; "
                "set EV_OUTBOUND_ALLOW_PRIVATE=true to allow it"
            )
