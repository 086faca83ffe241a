"""Request and response models of the API (never the engine's domain classes). Times are Unix
epoch seconds (floats); durations are seconds unless the name says ``_ms``."""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt

from api.auth import Role
from engine import ConsistencyLevel, StepStatus, WorkflowStatus

JSONObject = dict[str, Any]


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Problem(BaseModel):
    """RFC 9457 problem details; ``code`` is a stable machine-readable reason."""

    type: str = Field(examples=["urn:wes:problem:illegal-transition"])
    title: str
    status: int
    detail: str
    instance: str
    code: str
    problems: list[str] | None = None
    errors: list[JSONObject] | None = None
    current: str | None = None
    target: str | None = None


# ------------------------------------------------------------------------------ workflows
class WorkflowStart(Model):
    definition: str = Field(min_length=1, max_length=200, description="Definition name")
    version: StrictInt | None = Field(default=None, ge=1, description="Default: the latest active version")
    input: JSONObject = Field(default_factory=dict)
    correlation_id: str | None = Field(default=None, max_length=200)
    consistency: ConsistencyLevel | None = Field(default=None, description="Default: the definition's")


class WorkflowStarted(BaseModel):
    workflow_id: str
    status: WorkflowStatus
    definition: str = Field(description="name:version that runs")
    created: bool = Field(description="False when an Idempotency-Key repeat returned an earlier workflow")


class WorkflowSummary(BaseModel):
    workflow_id: str
    workflow_type: str = Field(description="Definition name")
    status: WorkflowStatus
    correlation_id: str
    created_at: float
    updated_at: float
    requires_attention: bool


class WorkflowPage(BaseModel):
    items: list[WorkflowSummary]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page")


class StepCompensation(BaseModel):
    type: str
    attempt: int
    via: str | None = Field(description="Handler that ran (action or alternative)")
    error: JSONObject | None
    started_at: float | None
    ended_at: float | None
    next_attempt_at: float | None
    running: bool
    operator_retry: bool


class StepView(BaseModel):
    step_id: str
    step_type: str
    target: str
    depends_on: list[str]
    status: StepStatus
    attempt: int
    idempotent: bool
    idempotency_key: str | None
    input: Any = None
    output: Any = None
    error: JSONObject | None
    started_at: float | None
    ended_at: float | None
    execution_time: float | None = Field(description="Seconds the last attempt ran")
    next_attempt_at: float | None
    uncertain: bool = Field(description="The attempt timed out: its effect is unknown")
    completed_seq: int | None
    stack_seq: int | None = Field(description="Position on the compensation stack (LIFO order)")
    compensation: StepCompensation


class WorkflowTimes(BaseModel):
    created_at: float
    started_at: float | None
    deadline: float
    finished_at: float | None
    paused_at: float | None
    compensation_started_at: float | None
    compensation_deadline: float | None
    updated_at: float


class WorkflowContextView(BaseModel):
    variables: JSONObject
    headers: dict[str, str]
    security: JSONObject
    tracing: JSONObject


class SagaStateView(BaseModel):
    phase: Literal["FORWARD", "BACKWARD"]
    current_step: int
    total_steps: int
    completed_steps: list[str]
    pending_steps: list[str]
    compensation_steps: list[str]


class WorkflowDetail(BaseModel):
    workflow_id: str
    workflow_type: str
    definition_version: int
    status: WorkflowStatus
    consistency: ConsistencyLevel
    correlation_id: str
    input: JSONObject
    resources: list[str]
    steps: list[StepView]
    compensation_stack: list[str] = Field(description="Step ids, bottom first: the last is compensated next")
    context: WorkflowContextView
    times: WorkflowTimes
    saga: SagaStateView
    total_retries: int
    compensation_retries: int
    duration: float | None
    reason: str | None
    compensation_reason: str | None
    requires_attention: bool
    failed_compensations: list[str]
    compensation_timed_out: bool
    waiting_for_lock: bool
    result: Any = None
    version: int


class WorkflowEvent(BaseModel):
    id: str = Field(description="Stream entry id (pass as `after` to read on)")
    version: int
    type: str
    at: float
    data: JSONObject = Field(description="The event's own fields")


class ConsistencyView(BaseModel):
    workflow_id: str
    consistent: bool
    stored_version: int
    replayed_version: int
    versions_sequential: bool
    differences: list[str]


class WorkflowCounts(BaseModel):
    by_status: dict[str, int]
    requires_attention: int
    total: int


class ControlReason(Model):
    reason: str | None = Field(default=None, max_length=500)


class RetryCompensation(Model):
    steps: list[str] | None = Field(default=None, description="Default: every failed compensation")


class BulkAction(StrEnum):
    PAUSE = "pause"
    RESUME = "resume"
    CANCEL = "cancel"
    RETRY_COMPENSATION = "retry-compensation"


class WorkflowFilter(Model):
    status: WorkflowStatus | None = None
    definition: str | None = Field(default=None, max_length=200)
    correlation_id: str | None = Field(default=None, max_length=200)
    requires_attention: StrictBool = False
    created_after: StrictFloat | None = Field(default=None, ge=0, le=1e10, description="Epoch seconds, inclusive")
    created_before: StrictFloat | None = Field(default=None, ge=0, le=1e10, description="Epoch seconds, exclusive")


class BulkRequest(Model):
    action: BulkAction
    ids: list[str] | None = Field(default=None, max_length=1000, description="Exactly one of ids and filter")
    filter: WorkflowFilter | None = None
    limit: StrictInt = Field(default=100, ge=1, le=1000, description="Most workflows a filter selects")
    reason: str | None = Field(default=None, max_length=500)


class BulkItemError(BaseModel):
    status: int
    code: str
    detail: str


class BulkItem(BaseModel):
    workflow_id: str
    ok: bool
    status: WorkflowStatus | None = Field(description="Status after the action (when it succeeded)")
    error: BulkItemError | None


class BulkResult(BaseModel):
    action: BulkAction
    requested: int
    succeeded: int
    failed: int
    truncated: bool = Field(description="The filter matched more than `limit`: send the request again")
    results: list[BulkItem]


# ------------------------------------------------------------------------------ definitions
class DefinitionSummary(BaseModel):
    name: str
    version: int
    active: bool
    description: str
    consistency: ConsistencyLevel
    timeout: float
    trigger: JSONObject
    steps: int


class DefinitionVersions(BaseModel):
    name: str
    versions: list[DefinitionSummary]
    latest_active: int | None


class DefinitionView(BaseModel):
    name: str
    version: int
    active: bool
    description: str
    consistency: ConsistencyLevel
    timeout: float
    trigger: JSONObject
    validation_rules: JSONObject
    defaults: JSONObject
    resources: list[str]
    steps: list[JSONObject]


class DefinitionApplied(BaseModel):
    definition: str = Field(description="name:version")
    name: str
    version: int
    created: bool = Field(description="False: the same content was already the latest version")
    active: bool


class DefinitionValidation(BaseModel):
    valid: bool
    name: str | None
    problems: list[str]


# ------------------------------------------------------------------------------ services
class InstanceHealth(BaseModel):
    status: Literal["HEALTHY", "UNHEALTHY", "UNKNOWN"]
    checked_at: float | None
    latency_ms: float | None
    error: str | None


class InstanceView(BaseModel):
    id: str
    url: str
    capacity: int
    in_flight: int
    utilization: float = Field(description="In flight / capacity (0..1+)")
    healthy: bool
    health: InstanceHealth


class BreakerView(BaseModel):
    service: str
    state: Literal["CLOSED", "OPEN", "HALF_OPEN"]
    forced: Literal["OPEN", "CLOSED"] | None
    open_until: float | None
    trips: int
    calls: int
    failures: int
    window_calls: int
    window_failure_rate: float
    policy: JSONObject


class ServiceView(BaseModel):
    name: str
    instances: list[InstanceView]
    utilization: float = Field(description="Calls in flight / capacity over healthy instances")
    healthy_instances: int
    breaker: BreakerView
    config: JSONObject


class BreakerAction(StrEnum):
    FORCE_OPEN = "force-open"
    FORCE_CLOSED = "force-closed"
    RESET = "reset"


class Latency(Model):
    mean: StrictFloat = Field(ge=0)
    p99: StrictFloat = Field(ge=0)


class ChaosKnobs(Model):
    """Partial update of a simulated service's chaos knobs (demo only)."""

    instance: str | None = Field(default=None, description="Only this instance (default: all)")
    error_rate: StrictFloat | None = Field(default=None, ge=0, le=1)
    error_status: StrictInt | None = Field(default=None, ge=400, le=599)
    latency_ms: Latency | None = None
    down: StrictBool | None = None
    health_delay_s: StrictFloat | None = Field(default=None, ge=0, le=60)


class ChaosInstance(Model):
    instance: str | None = None


class ChaosView(BaseModel):
    service: str
    instances: dict[str, JSONObject | None] = Field(description="Instance id -> knobs in force (null: unreachable)")


class ServicesApplied(BaseModel):
    services: list[str]


# ------------------------------------------------------------------------------ waveless
class WavelessStatus(BaseModel):
    available: bool = Field(description="A release controller has reported (a worker leads it)")
    mode: str | None = Field(description="fixed | waveless")
    definition: str | None = Field(description="The saga each released order starts")
    leader: str | None = Field(description="Worker running the controller")
    batch_size: float | None = Field(description="Orders per release, at most")
    rate: float | None = Field(description="Orders released per second, at most")
    limit: str | None = Field(description="What held the last release back: batch | rate | headroom | wave | idle")
    queue_depth: float | None = Field(description="Orders accepted and not yet released")
    in_flight: float | None
    utilization: float | None
    target_utilization: float | None
    pinned_batch: float | None
    pinned_rate: float | None
    last_kind: str | None = Field(description="What the last adjustment did: grow | shrink | hold | pinned | fixed")
    last_reason: str | None = Field(description="Why")
    last_error: str | None
    updated_at: float | None
    last_decision: JSONObject | None
    decisions: list[JSONObject] = Field(description="Newest first")
    state: JSONObject = Field(description="Every field of the controller's state (see `wes waveless status`)")


class WavelessModeRequest(Model):
    mode: Literal["waveless", "fixed"]
    wave_size: StrictInt | None = Field(default=None, ge=1, le=100_000, description="fixed: orders per wave")
    wave_interval_seconds: StrictFloat | None = Field(default=None, gt=0, le=3600, description="fixed: seconds between")


class WavelessPin(Model):
    """Exactly one of the two."""

    batch_size: StrictInt | None = Field(default=None, ge=1, le=100_000)
    rate: StrictFloat | None = Field(default=None, gt=0, le=100_000)


class OrdersSubmit(Model):
    orders: list[JSONObject] = Field(min_length=1, max_length=1000, description="Each the saga's input")


class OrderAccepted(BaseModel):
    order_id: str
    entry_id: str


class OrdersAccepted(BaseModel):
    accepted: list[OrderAccepted]


# ------------------------------------------------------------------------------ SLA and history
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


class SlaReport(BaseModel):
    since: float
    until: float
    window_s: float
    targets: list[SlaTarget]


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


# ------------------------------------------------------------------------------ feed, keys, audit
class FeedEvent(BaseModel):
    id: str = Field(description="Feed stream id: the SSE id and the `after` cursor")
    workflow_id: str | None
    version: int
    type: str
    at: float | None
    data: JSONObject


class FeedPage(BaseModel):
    items: list[FeedEvent]
    last_id: str | None = Field(description="Pass as `after` to read newer events")


class KeyCreate(Model):
    role: Role
    name: str = Field(min_length=1, max_length=100)


class KeyView(BaseModel):
    key_id: str
    role: Role
    name: str
    source: Literal["env", "file", "redis"]
    created_at: float | None
    created_by: str | None


class KeyCreated(KeyView):
    key: str = Field(description="The secret: shown this once, stored only as a hash")


class AuditEntry(BaseModel):
    id: str
    at: float
    key_id: str
    role: str
    key_name: str
    action: str
    method: str
    path: str
    target: Any = None
    params: JSONObject
    status: int
    ok: bool
    error_code: str | None
    error: str | None


class AuditPage(BaseModel):
    items: list[AuditEntry]
    next_cursor: str | None


# ------------------------------------------------------------------------------ health and info
class Health(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    ready: bool
    redis: bool
    workers: int
    detail: str


class WorkerView(BaseModel):
    name: str
    last_seen: float


class ApiInfo(BaseModel):
    version: str
    api: str
    key_id: str
    role: Role
    features: dict[str, bool]
    limits: dict[str, float]
    server_time: float
