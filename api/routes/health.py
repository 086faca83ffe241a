"""Liveness, readiness and metrics at the root (no API key), plus /api/v1/info and /api/v1/workers."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from api import observability
from api.deps import ServicesDep, Viewer
from api.errors import READ
from api.schemas.health import ApiInfo, Health, Readiness, WorkerView

root = APIRouter(tags=["health"])
router = APIRouter(tags=["info"])
WORKER_ALIVE_S = 15.0


@root.get("/healthz", response_model=Health, summary="The API process is up")
async def healthz() -> Any:
    return {"status": "ok"}


@root.get(
    "/readyz",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "Redis unreachable or no live worker"}},
    summary="Redis reachable and at least one worker alive",
)
async def readyz(services: ServicesDep) -> Any:
    try:
        await services.stores.ping()
        cutoff = int((time.time() - WORKER_ALIVE_S) * 1000)
        workers = await services.stores.live_worker_count(cutoff)
        redis_ok = True
        detail = "ready" if workers else f"no worker has sent a heartbeat in the last {WORKER_ALIVE_S:g}s"
    except Exception as exc:
        redis_ok, workers, detail = False, 0, f"Redis unreachable: {type(exc).__name__}: {exc}"
    ready = redis_ok and workers > 0
    body = {"ready": ready, "redis": redis_ok, "workers": workers, "detail": detail}
    return JSONResponse(body, status_code=200 if ready else 503)


@root.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}, "description": "Prometheus text"}},
    summary="Prometheus exposition: the engine's metrics and the API's own",
)
def metrics(request: Request) -> Response:
    body, content_type = observability.render(request.app.state.api)
    return Response(body, media_type=content_type)


@router.get("/info", response_model=ApiInfo, responses=READ, summary="Who am I, and what this server offers")
def info(services: ServicesDep, principal: Viewer) -> Any:
    s = services.settings
    return {
        "version": observability.VERSION,
        "api": "v1",
        "key_id": principal.key_id,
        "role": principal.role,
        "features": {
            "chaos": s.chaos_enabled,
            "waveless": True,
            "rate_limit": s.rate_limit_per_second > 0,
        },
        "limits": {
            "rate_limit_per_second": s.rate_limit_per_second,
            "rate_limit_burst": s.rate_limit_burst,
            "max_bulk": s.max_bulk,
            "max_page": 500,
            "stats_interval_s": 10,
            "stats_retention_s": 2 * 24 * 3600,
        },
        "server_time": time.time(),
    }


@router.get("/workers", response_model=list[WorkerView], responses=READ, summary="Workers with a recent heartbeat")
def workers(services: ServicesDep, _: Viewer) -> Any:
    cutoff = int((time.time() - WORKER_ALIVE_S) * 1000)
    return [{"name": name, "last_seen": ms / 1000.0} for name, ms in services.stores.live_workers(cutoff)]
