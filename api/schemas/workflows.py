"""Workflows: start, read, list, counts, events, consistency and the operator's controls (one or bulk)."""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, Field, StrictBool, StrictFloat, StrictInt

from api.schemas.base import JSONObject, Model
from engine import ConsistencyLevel, StepStatus, WorkflowStatus


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
