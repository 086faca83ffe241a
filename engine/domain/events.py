"""Domain events: every change of a workflow is one of these, appended to its stream.

The seed's six (WorkflowStarted, StepExecuted, StepFailed, CompensationStarted, WorkflowCompleted,
WorkflowTimeout) plus the rest of the lifecycle. Events carry every value needed to rebuild the
instance, including timestamps and decided retry times, so replay is deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, ClassVar


@dataclass(frozen=True, slots=True)
class DomainEvent:
    TYPE: ClassVar[str] = ""
    workflow_id: str
    at: float

    def to_dict(self) -> dict[str, Any]:
        out = {"type": self.TYPE}
        for f in fields(self):
            out[f.name] = getattr(self, f.name)
        return out


_REGISTRY: dict[str, type[DomainEvent]] = {}


def event(cls):
    cls = dataclass(frozen=True, slots=True)(cls)
    cls.TYPE = cls.__name__
    _REGISTRY[cls.__name__] = cls
    return cls


def event_from_dict(data: dict[str, Any]) -> DomainEvent:
    kind = data.get("type")
    cls = _REGISTRY.get(kind)  # type: ignore[arg-type]
    if cls is None:
        raise ValueError(f"unknown event type {kind!r}")
    names = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in data.items() if k in names})


def event_types() -> list[str]:
    return sorted(_REGISTRY)


@event
class WorkflowCreated(DomainEvent):
    workflow_type: str
    definition_version: int
    consistency: str
    input: dict[str, Any]
    correlation_id: str
    deadline: float
    plan: list[dict[str, Any]]
    """Per step: id, depends_on (resolved), target, step_type, compensation type, idempotent."""
    headers: dict[str, str] = field(default_factory=dict)
    security: dict[str, Any] = field(default_factory=dict)
    tracing: dict[str, Any] = field(default_factory=dict)
    resources: list[str] = field(default_factory=list)


@event
class WorkflowStarted(DomainEvent):
    workflow_type: str
    correlation_id: str


@event
class ResourceLockWaiting(DomainEvent):
    resources: list[str]
    holder: str


@event
class StepStarted(DomainEvent):
    step_id: str
    attempt: int
    idempotency_key: str
    input: dict[str, Any]
    recovered: bool = False


@event
class StepExecuted(DomainEvent):
    step_id: str
    attempt: int
    execution_time: float
    output: Any = None
    status: str = "COMPLETED"


@event
class StepFailed(DomainEvent):
    step_id: str
    attempt: int
    reason: str
    error_type: str
    will_retry: bool
    next_attempt_at: float | None = None
    uncertain: bool = False
    """The attempt's effect is unknown (timeout, interrupted): compensate it if the step is given up."""
    execution_time: float = 0.0


@event
class WorkflowPaused(DomainEvent):
    by: str = ""
    reason: str = ""


@event
class WorkflowResumed(DomainEvent):
    by: str = ""


@event
class WorkflowCancelled(DomainEvent):
    by: str = ""
    reason: str = "cancelled"


@event
class WorkflowFailed(DomainEvent):
    step_id: str | None
    reason: str


@event
class WorkflowTimeout(DomainEvent):
    last_executed_step: str | None
    elapsed_time: float


@event
class CompensationStarted(DomainEvent):
    reason: str
    steps_to_compensate: list[str]
    compensation_deadline: float
    budget_floor: float = 1.0
    """The least budget granted (it covers a worker dying mid-compensation); kept when the deadline moves."""


@event
class CompensationStepStarted(DomainEvent):
    step_id: str
    attempt: int
    via: str
    idempotency_key: str


@event
class StepCompensated(DomainEvent):
    step_id: str
    attempt: int
    via: str
    execution_time: float


@event
class CompensationFailed(DomainEvent):
    step_id: str
    attempt: int
    reason: str
    error_type: str
    will_retry: bool
    next_attempt_at: float | None = None


@event
class CompensationParked(DomainEvent):
    step_id: str
    note: str = ""


@event
class CompensationTimeout(DomainEvent):
    elapsed_time: float
    budget: float


@event
class WorkflowCompensated(DomainEvent):
    reason: str
    requires_attention: bool
    failed_compensations: list[str]


@event
class WorkflowCompleted(DomainEvent):
    completion_time: float
    result: dict[str, Any]
    metrics: dict[str, Any]


@event
class CompensationRetryRequested(DomainEvent):
    steps: list[str]
    by: str = ""
    compensation_deadline: float | None = None
    """When the retried compensations must be done (None in events from before it was recorded)."""
