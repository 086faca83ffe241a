"""SLA compliance and the per-interval history of counts, rates and latency."""

from __future__ import annotations

from pydantic import BaseModel, Field


class SlaTarget(BaseModel):
    name: str = Field(description="The SLI: workflow_start, step_execution, compensation, state_persistence, ...")
    description: str
    metric: str = Field(description="Rollup histogram the compliance is measured on")
    target_s: float = Field(description="The seed's target")
    objective: float = Field(description="Share that must meet the target")
    count: int
    compliance: float | None = Field(description="Share at or under the target (null: no data in the window)")
    met: bool | None
    p50_s: float | None
    p90_s: float | None = Field(description="Kept for older clients; p95_s and p99_s are what the dashboard shows")
    p95_s: float | None
    p99_s: float | None
    mean_s: float | None
    bar_metric: str = Field(description="Histogram our tighter bar is a p99 on (an overhead, or the same)")
    bar_s: float
    bar_count: int
    bar_p99_s: float | None
    bar_compliance: float | None
    bar_met: bool | None


class LatencyIndicator(BaseModel):
    name: str = Field(description="The SLI: dispatch_lag (from due to claimed by a worker)")
    description: str
    metric: str = Field(description="Rollup histogram it is measured on")
    quantile: float = Field(description="The quantile our bar is on")
    bar_s: float = Field(description="Our bar: that quantile at or under it")
    count: int
    p50_s: float | None
    p90_s: float | None
    p95_s: float | None
    p99_s: float | None
    mean_s: float | None
    bar_compliance: float | None = Field(description="Share at or under the bar (null: no data in the window)")
    bar_met: bool | None


class SlaReport(BaseModel):
    since: float
    until: float
    window_s: float
    targets: list[SlaTarget]
    indicators: list[LatencyIndicator] = Field(
        default_factory=list, description="Latency SLIs of ours without a seed target, with our bar"
    )


class SeriesPoint(BaseModel):
    start: float
    counters: dict[str, int] = Field(description="Totals per counter family in this interval")
    by_service: dict[str, dict[str, int]] = Field(
        default_factory=dict,
        description="Per service, its counters in this interval: service_calls.ok / .failed (outcomes "
        "the breaker recorded), service_calls.refused (breaker open or no healthy instance), breaker_trips",
    )
    rates: dict[str, float] = Field(description="The same per second")
    latency: dict[str, dict[str, float | int | None]] = Field(
        description="Per metric: count, p50_s, p95_s, p99_s, compliance (share at or under the SLA target)"
    )


class Series(BaseModel):
    since: float
    until: float
    step_s: int
    points: list[SeriesPoint]
    breakdown: dict[str, dict[str, int]] = Field(
        description="Counter totals over the whole range by label (definition, service, outcome)"
    )
