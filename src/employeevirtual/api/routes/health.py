from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from employeevirtual.api.deps import RuntimeDep
from employeevirtual.runtime import Runtime
from employeevirtual.stores.sql.engine import ping

router = APIRouter(prefix="/health", tags=["health"])


@router.get("/live")
async def live() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/ready")
async def ready(runtime: RuntimeDep) -> JSONResponse:
    """Each dependency's status and latency. SQL is required (503 without it); MongoDB is not:
    without it turns still commit and history is read from SQL, so the service is degraded."""
    checks: dict[str, dict[str, Any]] = {}
    started = time.perf_counter()
    try:
        await ping(runtime.engine)
        checks["sql"] = {"status": "ok"}
    except Exception as exc:
        checks["sql"] = {"status": "down", "error": type(exc).__name__}
    checks["sql"]["latency_ms"] = round((time.perf_counter() - started) * 1000, 2)
    started = time.perf_counter()
    try:
        await runtime.documents.ping()
        checks["mongodb"] = {"status": "ok"}
    except Exception as exc:
        checks["mongodb"] = {"status": "down", "error": type(exc).__name__}
    checks["mongodb"]["latency_ms"] = round((time.perf_counter() - started) * 1000, 2)
    if checks["sql"]["status"] == "ok":
        checks["sync"] = await _sync_check(runtime)
    if checks["sql"]["status"] != "ok":
        overall, code = "down", 503
    elif checks["mongodb"]["status"] != "ok" or checks["sync"]["status"] != "ok":
        overall, code = "degraded", 200
    else:
        overall, code = "ok", 200
    return JSONResponse({"status": overall, "checks": checks}, status_code=code)


async def _sync_check(runtime: Runtime) -> dict[str, Any]:
    """How far MongoDB is behind SQL: "lagging" past EV_SYNC_ALERT_SECONDS."""
    try:
        lag = await runtime.relay.measure_lag()
    except Exception as exc:
        return {"status": "unknown", "error": type(exc).__name__}
    limit = runtime.settings.sync_alert_seconds
    oldest = lag.oldest_unsynced_at
    return {
        "status": "lagging" if lag.seconds > limit else "ok",
        "lag_seconds": round(lag.seconds, 3),
        "alert_seconds": limit,
        "conversations_behind": lag.conversations,
        "oldest_unsynced_at": oldest.isoformat() if oldest else None,
    }
