from __future__ import annotations

import time
from typing import Any

from fastapi.responses import JSONResponse

from employeevirtual.api.deps import RuntimeDep
from employeevirtual.api.routing import Router
from employeevirtual.runtime import Runtime

router = Router(prefix="/health", tags=["health"])


@router.get("/live")
async def live() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/ready")
async def ready(runtime: RuntimeDep) -> JSONResponse:
    """Each store probed with a cheap write (a ping passes on a store that fails every write),
    with its latency and last write error; the embedded SecantusDB's supervision; how far
    MongoDB is behind SQL, and whether it lost data. SQL is required (503 without it); MongoDB
    is not: without it turns still commit and history is read from SQL, so the service is
    degraded."""
    checks: dict[str, dict[str, Any]] = {
        "sql": await _sql(runtime),
        "mongodb": await _mongo(runtime),
    }
    if checks["sql"]["status"] == "ok":
        checks["sync"] = await _sync_check(runtime)
    if checks["sql"]["status"] != "ok":
        overall, code = "down", 503
    elif checks["mongodb"]["status"] != "ok" or checks["sync"]["status"] != "ok":
        overall, code = "degraded", 200
    else:
        overall, code = "ok", 200
    return JSONResponse({"status": overall, "checks": checks}, status_code=code)


async def _sql(runtime: Runtime) -> dict[str, Any]:
    """The heartbeat write of this server's instance row: a real, tiny write."""
    started = time.perf_counter()
    ok = await runtime.instance.beat()
    check: dict[str, Any] = {"status": "ok" if ok else "down", "probe": "write"}
    if not ok:
        check["error"] = runtime.instance.last_write_error
    check["latency_ms"] = round((time.perf_counter() - started) * 1000, 2)
    return check


async def _mongo(runtime: Runtime) -> dict[str, Any]:
    started = time.perf_counter()
    breaker = runtime.breaker
    check: dict[str, Any]
    if breaker.is_open:  # known unreachable: say so without waiting out server selection
        check = {"status": "down", "error": f"unreachable ({breaker.last_error}); failing fast"}
    else:
        try:
            await runtime.documents.probe_write(str(runtime.instance.id))
            check = {"status": "ok", "probe": "write"}
        except Exception as exc:
            check = {"status": "down", "error": f"{type(exc).__name__}: {str(exc)[:200]}"}
    check["latency_ms"] = round((time.perf_counter() - started) * 1000, 2)
    supervisor = runtime.supervisor
    if supervisor is not None:
        check["embedded"] = {
            "running": supervisor.server.running,
            "restarts": supervisor.restarts,
            "last_exit": supervisor.last_exit,
            "last_write_error": supervisor.last_write_error,
        }
    return check


async def _sync_check(runtime: Runtime) -> dict[str, Any]:
    """How far MongoDB is behind SQL ("lagging" past EV_SYNC_ALERT_SECONDS), and whether it
    holds less than SQL says it was given ("drift": it lost data; being repaired)."""
    state = runtime.reconciler.state
    drift = {
        "missing_messages": state.missing_messages,
        "missing_conversations": state.missing_conversations,
        "last_totals_check_at": _iso(state.last_totals_at),
        "last_round_at": _iso(state.last_round_at),
        "last_round_drifts": state.last_round_drifts,
        "unrepaired": state.last_round_unrepaired,
        "repaired_total": state.repaired_total,
        "error": state.last_error,
    }
    try:
        lag = await runtime.relay.measure_lag()
    except Exception as exc:
        return {"status": "unknown", "error": type(exc).__name__, "drift": drift}
    limit = runtime.settings.sync_alert_seconds
    oldest = lag.oldest_unsynced_at
    status = "drift" if state.drift else "lagging" if lag.seconds > limit else "ok"
    return {
        "status": status,
        "lag_seconds": round(lag.seconds, 3),
        "alert_seconds": limit,
        "conversations_behind": lag.conversations,
        "oldest_unsynced_at": oldest.isoformat() if oldest else None,
        "drift": drift,
    }


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None
