"""SLA compliance and rate history from the engine's 10-second rollups (two days kept): the charts of
the embedded default, where no Prometheus runs."""

from __future__ import annotations

import math
import time
from typing import Annotated, Any

from fastapi import APIRouter, Query

from api import sla
from api.deps import EngineDep, Viewer
from api.errors import READ, ApiProblem
from api.routes.workflows import Instant
from api.schemas.sla import Series, SlaReport

router = APIRouter(prefix="/sla", tags=["sla"])
RETENTION_S = 2 * 24 * 3600


@router.get("", response_model=SlaReport, responses=READ, summary="SLA compliance over a recent window")
def sla_report(
    engine: EngineDep,
    _: Viewer,
    window: Annotated[int, Query(ge=10, le=RETENTION_S, description="Seconds back from now")] = 300,
) -> Any:
    until = time.time()
    since = until - window
    hists, _counters = engine.stats(since, until)
    return {
        "since": since,
        "until": until,
        "window_s": window,
        "targets": sla.compliance_report(hists),
        "indicators": sla.indicators_report(hists),
    }


@router.get("/series", response_model=Series, responses=READ, summary="Counts, rates and latency per interval")
def sla_series(
    engine: EngineDep,
    _: Viewer,
    since: Annotated[Instant | None, Query(description="ISO 8601 or epoch seconds; default an hour ago")] = None,
    until: Annotated[Instant | None, Query(description="ISO 8601 or epoch seconds; default now")] = None,
    step: Annotated[int | None, Query(ge=10, le=RETENTION_S, description="Seconds per point (multiple of 10)")] = None,
    definition: Annotated[str | None, Query(max_length=200, description="Counters of this definition only")] = None,
) -> Any:
    now = time.time()
    end = min(now if until is None else float(until), now)
    start = max(end - 3600 if since is None else float(since), now - RETENTION_S)
    if start >= end:
        raise ApiProblem(422, "invalid-request", "`since` must be before `until` (and within the last two days)")
    span = end - start
    step_s = max(step or 0, math.ceil(span / sla.MAX_POINTS / sla.INTERVAL_S) * sla.INTERVAL_S, sla.INTERVAL_S)
    step_s = math.ceil(step_s / sla.INTERVAL_S) * sla.INTERVAL_S
    points, breakdown = sla.build_series(engine.stats_series(start, end), start, end, step_s, definition)
    return {"since": start, "until": end, "step_s": step_s, "points": points, "breakdown": breakdown}
