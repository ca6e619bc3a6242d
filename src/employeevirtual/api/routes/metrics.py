"""GET /metrics: Prometheus exposition format, for a scraper holding ``EV_METRICS_TOKEN``."""

from __future__ import annotations

import hmac
import logging
from typing import Annotated

from fastapi import Header
from fastapi.responses import Response

from employeevirtual.analytics import metrics
from employeevirtual.api.deps import RuntimeDep
from employeevirtual.api.routing import Router
from employeevirtual.errors import NotFound, Unauthorized

router = Router(tags=["metrics"])
log = logging.getLogger(__name__)


@router.get("/metrics", include_in_schema=False)
async def prometheus_metrics(
    runtime: RuntimeDep, authorization: Annotated[str | None, Header()] = None
) -> Response:
    """404 unless ``EV_METRICS_TOKEN`` is set; then ``Authorization: Bearer <token>``."""
    token = runtime.settings.metrics_token
    if token is None:
        raise NotFound("not found")
    expected = f"Bearer {token.get_secret_value()}".encode()
    if authorization is None or not hmac.compare_digest(authorization.encode(), expected):
        raise Unauthorized("/metrics needs Authorization: Bearer <EV_METRICS_TOKEN>")
    try:
        lag = await runtime.relay.measure_lag()
        metrics.RELAY_LAG.set(lag.seconds)
        metrics.RELAY_BACKLOG.set(lag.conversations)
    except Exception as exc:  # SQL away: the other metrics still matter most then
        log.warning("relay lag not measured for /metrics: %s", type(exc).__name__)
    try:
        metrics.INGESTION_QUEUE_DEPTH.set(await runtime.knowledge.worker.queue_depth())
    except Exception as exc:
        log.warning("ingestion queue not measured for /metrics: %s", type(exc).__name__)
    return Response(metrics.render(), media_type=metrics.CONTENT_TYPE_LATEST)
