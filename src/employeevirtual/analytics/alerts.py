"""Budget warnings leave the building: a ``system_logs`` document and, when
``EV_ALERT_WEBHOOK_URL`` is set, a JSON POST to it (outbound URL rules checked at each send).
Sent in the background after the turn's commit: a slow webhook never slows a turn."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

import httpx

from employeevirtual.security.outbound import OutboundRefused, check_outbound_url
from employeevirtual.stores.mongo.documents import DocumentStore

__all__ = ["AlertSender"]

log = logging.getLogger(__name__)


class AlertSender:
    def __init__(
        self,
        documents: DocumentStore,
        *,
        webhook_url: str | None,
        allowed_hosts: Sequence[str],
        allow_private: bool,
        timeout_seconds: float = 5.0,
    ) -> None:
        self.documents = documents
        self.webhook_url = webhook_url
        self.allowed_hosts = list(allowed_hosts)
        self.allow_private = allow_private
        self.timeout_seconds = timeout_seconds
        self._tasks: set[asyncio.Task[None]] = set()

    def send(self, event: str, message: str, details: dict[str, Any]) -> None:
        """Queue one alert (system log + webhook); returns at once."""
        task = asyncio.create_task(self._send(event, message, details), name=f"alert:{event}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        """Wait for the alerts already queued (shutdown, tests)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def _send(self, event: str, message: str, details: dict[str, Any]) -> None:
        log.warning("%s: %s", event, message)
        try:
            await self.documents.log_system(
                level="WARNING", event=event, message=message, details=details
            )
        except Exception as exc:  # MongoDB away: the audit row in SQL still records it
            log.warning("system_logs entry for %s not written: %s", event, type(exc).__name__)
        if self.webhook_url is None:
            return
        try:
            await check_outbound_url(
                self.webhook_url,
                allowed_hosts=self.allowed_hosts,
                allow_private=self.allow_private,
            )
            async with httpx.AsyncClient(
                timeout=self.timeout_seconds, follow_redirects=False
            ) as client:
                r = await client.post(
                    self.webhook_url, json={"event": event, "message": message, **details}
                )
            if r.status_code >= 300:
                log.warning("alert webhook answered HTTP %d for %s", r.status_code, event)
        except OutboundRefused as exc:
            log.error("alert webhook refused: %s", exc)
        except httpx.HTTPError as exc:
            log.warning("alert webhook failed for %s: %s", event, type(exc).__name__)
