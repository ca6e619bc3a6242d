"""Which peers may speak for a client (``X-Forwarded-For``/``-Proto``, ``X-Request-ID``): only
the proxies the operator names in ``EV_FORWARDED_ALLOW_IPS``; none by default.

The forwarded headers are applied inside the application (uvicorn's own
``ProxyHeadersMiddleware``, given the operator's list), so the same rule holds under any ASGI
server and in tests, and the request-id layer still sees the real peer."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from typing import cast

from starlette.types import ASGIApp
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

__all__ = ["TrustedProxies", "forwarded_headers"]

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class TrustedProxies:
    """Addresses and networks (``10.0.0.1``, ``10.0.0.0/8``, ``::1``); ``*`` trusts everyone
    (only behind a proxy that is the sole way in)."""

    def __init__(self, entries: Sequence[str]) -> None:
        self.entries = [e.strip() for e in entries if e.strip()]
        self.everyone = "*" in self.entries
        self.networks: list[_Network] = [
            ipaddress.ip_network(e, strict=False) for e in self.entries if e != "*"
        ]

    def __bool__(self) -> bool:
        return bool(self.entries)

    def trusts(self, host: str) -> bool:
        if self.everyone:
            return True
        if not self.networks:
            return False
        try:
            addr = ipaddress.ip_address(host)
        except ValueError:
            return False
        if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
            addr = addr.ipv4_mapped
        return any(addr in net for net in self.networks)


def forwarded_headers(app: ASGIApp, trusted: TrustedProxies) -> ASGIApp:
    """``app`` with the forwarded headers applied for trusted peers; ``app`` itself when no
    proxy is trusted (the headers are then ignored entirely)."""
    if not trusted:
        return app
    hosts = "*" if trusted.everyone else [str(n) for n in trusted.networks]
    return cast(ASGIApp, ProxyHeadersMiddleware(app, trusted_hosts=hosts))  # type: ignore[arg-type]
