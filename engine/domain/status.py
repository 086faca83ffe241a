"""Statuses as string enums, and the workflow state machine as an explicit table."""

from __future__ import annotations

from enum import StrEnum

from engine.errors import IllegalTransition


class WorkflowStatus(StrEnum):
    CREATED = "CREATED"
    RUNNING = "RUNNING"
    PAUSED = "PAUSED"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    TIMEOUT = "TIMEOUT"
    COMPENSATING = "COMPENSATING"
    COMPENSATED = "COMPENSATED"
    CANCELLED = "CANCELLED"


# The seed's diagram plus PRODUCT.md: cancel of a RUNNING/PAUSED saga compensates; the deadline also
# runs while PAUSED; an operator's retry of failed compensations re-opens a COMPENSATED saga.
TRANSITIONS: dict[WorkflowStatus, frozenset[WorkflowStatus]] = {
    WorkflowStatus.CREATED: frozenset({WorkflowStatus.RUNNING, WorkflowStatus.CANCELLED}),
    WorkflowStatus.RUNNING: frozenset(
        {
            WorkflowStatus.COMPLETED,
            WorkflowStatus.PAUSED,
            WorkflowStatus.FAILED,
            WorkflowStatus.TIMEOUT,
            WorkflowStatus.COMPENSATING,
        }
    ),
    WorkflowStatus.PAUSED: frozenset({WorkflowStatus.RUNNING, WorkflowStatus.TIMEOUT, WorkflowStatus.COMPENSATING}),
    WorkflowStatus.FAILED: frozenset({WorkflowStatus.COMPENSATING}),
    WorkflowStatus.TIMEOUT: frozenset({WorkflowStatus.COMPENSATING}),
    WorkflowStatus.COMPENSATING: frozenset({WorkflowStatus.COMPENSATED}),
    WorkflowStatus.COMPENSATED: frozenset({WorkflowStatus.COMPENSATING}),
    WorkflowStatus.COMPLETED: frozenset(),
    WorkflowStatus.CANCELLED: frozenset(),
}

TERMINAL: frozenset[WorkflowStatus] = frozenset(
    {WorkflowStatus.COMPLETED, WorkflowStatus.COMPENSATED, WorkflowStatus.CANCELLED}
)


def is_terminal(status: WorkflowStatus) -> bool:
    return status in TERMINAL


def can_transition(current: WorkflowStatus, target: WorkflowStatus) -> bool:
    return target in TRANSITIONS[current]


def check_transition(current: WorkflowStatus, target: WorkflowStatus, detail: str = "") -> None:
    if target not in TRANSITIONS[current]:
        raise IllegalTransition(current.value, target.value, detail)


class StepStatus(StrEnum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    WAITING_RETRY = "WAITING_RETRY"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    COMPENSATING = "COMPENSATING"
    COMPENSATED = "COMPENSATED"
    COMPENSATION_FAILED = "COMPENSATION_FAILED"
    COMPENSATION_PARKED = "COMPENSATION_PARKED"
    SKIPPED = "SKIPPED"


class SagaPhase(StrEnum):
    FORWARD = "FORWARD"
    BACKWARD = "BACKWARD"


class CompensationType(StrEnum):
    UNDO = "UNDO"
    RETRY = "RETRY"
    ALTERNATIVE = "ALTERNATIVE"
    MANUAL = "MANUAL"


class ConsistencyLevel(StrEnum):
    EVENTUAL = "EVENTUAL"
    AT_LEAST_ONCE = "AT_LEAST_ONCE"
    EXACTLY_ONCE = "EXACTLY_ONCE"
    STRICT = "STRICT"

    @property
    def persists_before_each_step(self) -> bool:
        return self is not ConsistencyLevel.EVENTUAL

    @property
    def stable_idempotency_key(self) -> bool:
        return self in (ConsistencyLevel.EXACTLY_ONCE, ConsistencyLevel.STRICT)


class BackoffStrategy(StrEnum):
    LINEAR = "LINEAR"
    EXPONENTIAL = "EXPONENTIAL"
    FIBONACCI = "FIBONACCI"
    CUSTOM = "CUSTOM"


class TriggerKind(StrEnum):
    MANUAL = "manual"
    EVENT = "event"
    SCHEDULE = "schedule"
