"""Every Prometheus metric of the engine in one place: names, help, labels, buckets, the SLA table.

Label values come only from bounded sets: definition names and step ids (operator-configured), service
and instance ids (configuration), and closed enums (outcome, status, state). Never an id.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client.utils import floatToGoString

# ====================================================================== buckets
# Every SLA target (seed) and every bar of ours (PRODUCT.md) is an exact bucket bound, so compliance
# is a ratio of two counters: rate(..._bucket{le="<target>"}) / rate(..._count).
FAST_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
"""Engine-side latencies: persistence, event publishing, overheads, workflow start (100 µs .. 10 s)."""
CALL_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
"""A step's or a compensation's action (a handler or a service call): 1 ms .. 5 min."""
LONG_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0)
"""Whole sagas and whole compensations: 10 ms .. 2 h (the default workflow deadline is 30 min)."""
DISPATCH_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
"""Dispatch lag, from due to claimed: 1 ms .. 60 s, our bar (100 ms) one of them. A saga waiting longer
shows in ``wes_runnable_oldest_age_seconds`` too."""

# ====================================================================== label values
WORKFLOW_OUTCOMES = ("completed", "compensated")
STEP_OUTCOMES = ("completed", "failed", "retried", "recovered")
COMPENSATION_OUTCOMES = ("compensated", "failed", "retried", "parked")
WORKFLOW_STATUSES = (
    "CREATED", "RUNNING", "PAUSED", "COMPLETED", "FAILED", "TIMEOUT", "COMPENSATING", "COMPENSATED", "CANCELLED",
)  # fmt: skip
BREAKER_STATES = ("CLOSED", "OPEN", "HALF_OPEN")
FORCED_MODES = ("OPEN", "CLOSED")
CALL_OUTCOMES = ("ok", "failed")
QUEUES = ("runnable", "dispatch_jobs", "intake")
WAVELESS_MODES = ("fixed", "waveless")
WAVELESS_OUTCOMES = ("accepted", "released", "rejected")
WAVELESS_LIMITS = ("batch", "rate", "headroom", "wave", "idle")
DEADLINE_STATUSES = ("RUNNING", "PAUSED")
"""Statuses in which the workflow deadline applies (the engine times them out at it)."""


# ====================================================================== metric definitions
@dataclass(frozen=True)
class HistogramSpec:
    name: str
    help: str
    labels: tuple[str, ...]
    buckets: tuple[float, ...]


@dataclass(frozen=True)
class CounterSpec:
    name: str
    help: str
    labels: tuple[str, ...]
    outcomes: tuple[str, ...] = ()
    """Values of the last label (``outcome``) to pre-initialise at zero."""


HISTOGRAMS: dict[str, HistogramSpec] = {
    # key: the sample name the saga service records (engine/saga/service.py, engine/stats.py)
    "workflow_start": HistogramSpec(
        "wes_workflow_start_seconds",
        "Workflow start: validate the input, persist the instance with its first event, make it runnable "
        "(SLA: seed < 1 s, ours p99 < 10 ms).",
        ("workflow_type",),
        FAST_BUCKETS,
    ),
    "step_execution": HistogramSpec(
        "wes_step_execution_seconds",
        "A step attempt's action: the handler or service call, as the worker saw it (SLA: seed < 30 s).",
        ("workflow_type", "step"),
        CALL_BUCKETS,
    ),
    "step_overhead": HistogramSpec(
        "wes_step_overhead_seconds",
        "Engine time spent per step before its action runs: decide, record, persist (ours: p99 < 2 ms).",
        ("workflow_type",),
        FAST_BUCKETS,
    ),
    "compensation_execution": HistogramSpec(
        "wes_compensation_execution_seconds",
        "A compensation attempt's action (undo, alternative): handler or service call (SLA: seed < 60 s).",
        ("workflow_type", "step"),
        CALL_BUCKETS,
    ),
    "compensation_overhead": HistogramSpec(
        "wes_compensation_overhead_seconds",
        "Engine time spent per compensation before its action runs (ours: p99 < 2 ms).",
        ("workflow_type",),
        FAST_BUCKETS,
    ),
    "compensation_duration": HistogramSpec(
        "wes_compensation_duration_seconds",
        "A saga's whole compensation: from CompensationStarted to WorkflowCompensated.",
        ("workflow_type",),
        LONG_BUCKETS,
    ),
    "state_persistence": HistogramSpec(
        "wes_state_persistence_seconds",
        "Round trip of a state commit (one Lua script: version check, events, snapshot, indexes), timed on "
        "one commit in eight (SLA: seed < 100 ms, ours p99 < 2 ms).",
        (),
        FAST_BUCKETS,
    ),
    "event_publish": HistogramSpec(
        "wes_event_publish_seconds",
        "Event publishing: round trip of the timed commits that carry events; they are appended to the "
        "workflow's stream and the global feed in that same atomic call (SLA: seed < 50 ms, ours p99 < 1 ms).",
        (),
        FAST_BUCKETS,
    ),
    "dispatch_lag": HistogramSpec(
        "wes_dispatch_lag_seconds",
        "Dispatch lag: from when a saga fell due (a fresh start: its creation; a retry or a timer: its due "
        "time; a dead worker's saga: its lease expiry) to a worker claiming it (ours: p95 <= 100 ms).",
        (),
        DISPATCH_BUCKETS,
    ),
    "workflow_duration": HistogramSpec(
        "wes_workflow_duration_seconds",
        "A saga from creation to its end, by outcome.",
        ("workflow_type", "outcome"),
        LONG_BUCKETS,
    ),
}

COUNTERS: dict[str, CounterSpec] = {
    # key: the family name the saga service counts (StatsRecorder.incr("steps", (type, step, outcome)))
    "workflows_started": CounterSpec("wes_workflows_started_total", "Workflows started.", ("workflow_type",)),
    "workflows_finished": CounterSpec(
        "wes_workflows_finished_total",
        "Workflows that ended, by outcome (completed, or compensated after a failure, timeout or cancel).",
        ("workflow_type", "outcome"),
        WORKFLOW_OUTCOMES,
    ),
    "steps": CounterSpec(
        "wes_steps_total",
        "Step attempts by outcome: completed, failed (final), retried (failed, will retry), recovered "
        "(re-run after a worker died mid-step).",
        ("workflow_type", "step", "outcome"),
        STEP_OUTCOMES,
    ),
    "compensations_started": CounterSpec(
        "wes_compensations_started_total", "Sagas that began compensating (backward recovery).", ("workflow_type",)
    ),
    "compensations": CounterSpec(
        "wes_compensation_actions_total",
        "Compensation attempts by outcome: compensated, failed (final), retried, parked (MANUAL).",
        ("workflow_type", "outcome"),
        COMPENSATION_OUTCOMES,
    ),
    "compensation_timeouts": CounterSpec(
        "wes_compensation_timeouts_total",
        "Compensations that ran past their budget (2x the forward time).",
        ("workflow_type",),
    ),
    "workflows_timed_out": CounterSpec(
        "wes_workflows_timed_out_total", "Workflows that hit their deadline.", ("workflow_type",)
    ),
}


@dataclass(frozen=True)
class SlaTarget:
    """One row of PRODUCT.md's SLA table: the histogram whose bucket at the seed's target makes
    compliance a ratio, the SLO on it, and our tighter bar (a bucket too: p99 <= bar)."""

    sli: str
    what: str
    metric: str
    seconds: float
    objective: float
    bar_metric: str
    bar_seconds: float

    @property
    def le(self) -> str:
        return floatToGoString(self.seconds)

    @property
    def bar_le(self) -> str:
        return floatToGoString(self.bar_seconds)


SLA_TARGETS = (
    SlaTarget("workflow_start", "workflow start", "wes_workflow_start_seconds", 1.0, 0.999,
              "wes_workflow_start_seconds", 0.01),
    SlaTarget("step_execution", "step execution", "wes_step_execution_seconds", 30.0, 0.999,
              "wes_step_overhead_seconds", 0.002),
    SlaTarget("compensation", "compensation", "wes_compensation_execution_seconds", 60.0, 0.999,
              "wes_compensation_overhead_seconds", 0.002),
    SlaTarget("state_persistence", "state persistence", "wes_state_persistence_seconds", 0.1, 0.999,
              "wes_state_persistence_seconds", 0.002),
    SlaTarget("event_publishing", "event publishing", "wes_event_publish_seconds", 0.05, 0.999,
              "wes_event_publish_seconds", 0.001),
)  # fmt: skip


@dataclass(frozen=True)
class LatencyIndicator:
    """A latency SLI of ours with no seed target: a histogram and our bar on one of its quantiles (the
    bar is a bucket bound, so "quantile <= bar" is "at least ``quantile`` of it within the bucket")."""

    sli: str
    """The sample name the stats rollups use (a key of HISTOGRAMS)."""
    what: str
    metric: str
    quantile: float
    bar_seconds: float

    @property
    def bar_le(self) -> str:
        return floatToGoString(self.bar_seconds)


LATENCY_INDICATORS = (
    LatencyIndicator("dispatch_lag", "dispatch lag", "wes_dispatch_lag_seconds", 0.95, 0.1),
)  # fmt: skip
"""Dispatch lag p95 <= 100 ms: due work (retries, timers, a dead worker's sagas) and fresh starts are
picked up within a tenth of a second while the workers keep up; a backlog shows as a missed bar."""
BAR_QUANTILE = 0.99
"""Our bars are p99s: p99 <= bar  <=>  at least 99 % of observations in the bucket at the bar."""
SAGA_SUCCESS_OBJECTIVE = 0.99
"""SLO on sagas that end COMPLETED rather than compensated (the saga success rate)."""


# ====================================================================== rollup-only counter families
SERVICE_CALLS = "service_calls"
"""Per-service call outcomes (labels: service, outcome ok | failed | refused), counted by the workers'
service port into the stats rollups only: ``wes_service_calls_total`` is read from the breaker hash."""
BREAKER_TRIPS = "breaker_trips"
"""Breaker trips per service (label: service), counted into the stats rollups when a breaker opens."""
