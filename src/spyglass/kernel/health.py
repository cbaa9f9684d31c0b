"""Liveness, readiness (``application/health+json``) and Prometheus metrics endpoints.

The health format follows the IETF draft "Health Check Response Format for HTTP APIs":
``status`` is pass, warn or fail, and ``checks`` holds one entry per component.
"""

from __future__ import annotations

import shutil
import time
from typing import Any

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.concurrency import run_in_threadpool

from spyglass import __version__
from spyglass.kernel import selfmetrics
from spyglass.kernel.runtime import Runtime

router = APIRouter(include_in_schema=False)
HEALTH_JSON = "application/health+json"
DISK_WARN_BYTES = 2 * 1024**3
DISK_FAIL_BYTES = 200 * 1024**2
QUEUE_WARN_RATIO = 0.8


def _check(component: str, status: str, started: float, **extra: Any) -> dict[str, Any]:
    return {
        "componentId": component,
        "status": status,
        "observedValue": round((time.perf_counter() - started) * 1000, 2),
        "observedUnit": "ms",
        **extra,
    }


def _probe(component: str, fn) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    try:
        fn()
    except Exception as exc:  # noqa: BLE001 -- a failing dependency is what we report
        return _check(component, "fail", started, output=str(exc)[:300])
    return _check(component, "pass", started)


def readiness(rt: Runtime) -> dict[str, Any]:
    checks: dict[str, list[dict[str, Any]]] = {
        "metadata:responseTime": [_probe("metadata-db", rt.db.ping)],
        "telemetry:responseTime": [_probe("telemetry-store", rt.store.ping)],
    }
    w = rt.writer
    status = "fail" if not w.alive else "warn" if w.fill_ratio >= QUEUE_WARN_RATIO else "pass"
    checks["writer:queue"] = [
        {
            "componentId": "batching-writer",
            "status": status,
            "observedValue": w.pending_rows,
            "observedUnit": "rows",
            "output": "" if w.alive else "writer thread is not running",
            "limit": w.max_pending_rows,
        }
    ]
    j = rt.store.journal_status()
    if j is not None:
        # Loads failing: warn while the rows fit in memory, fail once the writer has to
        # refuse ingest (past the limit).
        status = ("fail" if j["error"] and j["waiting_bytes"] > j["limit_bytes"]
                  else "warn" if j["error"] or j["waiting_bytes"] > j["limit_bytes"] // 2
                  else "pass")
        checks["journal:waiting"] = [
            {"componentId": "ingest-journal", "status": status,
             "observedValue": j["waiting_rows"], "observedUnit": "rows",
             "output": j["error"] and f"loading into the store fails: {j['error']}"}
        ]
    free = shutil.disk_usage(rt.settings.data_dir).free
    disk = "fail" if free < DISK_FAIL_BYTES else "warn" if free < DISK_WARN_BYTES else "pass"
    checks["disk:free"] = [
        {"componentId": str(rt.settings.data_dir), "status": disk,
         "observedValue": free, "observedUnit": "bytes"}
    ]
    statuses = {c["status"] for entries in checks.values() for c in entries}
    overall = "fail" if "fail" in statuses else "warn" if "warn" in statuses else "pass"
    return {"status": overall, "version": __version__, "serviceId": "spyglass", "checks": checks}


def _health_response(body: dict[str, Any]) -> Response:
    import orjson

    code = 503 if body["status"] == "fail" else 200
    return Response(orjson.dumps(body), status_code=code, media_type=HEALTH_JSON,
                    headers={"Cache-Control": "no-store"})


@router.get("/healthz")
def healthz(request: Request) -> Response:
    rt: Runtime = request.app.state.runtime
    return _health_response({
        "status": "pass", "version": __version__, "serviceId": "spyglass",
        "checks": {"uptime": [{"componentType": "system", "status": "pass",
                                "observedValue": round(time.time() - rt.started_at, 1),
                                "observedUnit": "s"}]},
    })


@router.get("/readyz")
async def readyz(request: Request) -> Response:
    return _health_response(await run_in_threadpool(readiness, request.app.state.runtime))


@router.get("/metrics")
def metrics() -> Response:
    return Response(generate_latest(selfmetrics.REGISTRY), media_type=CONTENT_TYPE_LATEST)
