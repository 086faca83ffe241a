"""The parts of a workflow instance: each step's execution, the shared context, the saga view."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from engine.domain.status import SagaPhase, StepStatus


@dataclass
class StepExecution:
    """One step of one instance (seed's StepExecution entity)."""

    step_id: str
    step_type: str
    target: str
    depends_on: list[str]
    compensation_type: str
    idempotent: bool = True
    status: StepStatus = StepStatus.PENDING
    attempt: int = 0
    input: dict[str, Any] | None = None
    output: Any = None
    error: dict[str, Any] | None = None
    idempotency_key: str | None = None
    started_at: float | None = None
    ended_at: float | None = None
    execution_time: float | None = None
    next_attempt_at: float | None = None
    uncertain: bool = False
    completed_seq: int | None = None
    stack_seq: int | None = None
    """Order in which the step was pushed on the compensation stack (LIFO key for an operator retry)."""
    comp_attempt: int = 0
    comp_via: str | None = None
    comp_error: dict[str, Any] | None = None
    comp_next_attempt_at: float | None = None
    comp_started_at: float | None = None
    comp_ended_at: float | None = None
    comp_running: bool = False
    comp_operator_retry: bool = False

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["status"] = self.status.value
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StepExecution:
        # Built without __init__ (28 keyword arguments per step, at every lease): defaults first, then
        # the stored fields this engine knows. Fields of another engine version are tolerated, so
        # workers of two versions can share sagas.
        step = cls.__new__(cls)
        fields = step.__dict__
        fields.update(_STEP_DEFAULTS)
        if _STEP_FIELDS.issuperset(data):
            fields.update(data)
        else:
            fields.update((k, v) for k, v in data.items() if k in _STEP_FIELDS)
        fields["depends_on"] = list(fields["depends_on"])
        step.status = StepStatus(data["status"])
        return step


_STEP_FIELDS = frozenset(StepExecution.__dataclass_fields__)
_STEP_DEFAULTS = {
    name: f.default for name, f in StepExecution.__dataclass_fields__.items() if f.default is not dataclasses.MISSING
}


@dataclass
class WorkflowContext:
    variables: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    security: dict[str, Any] = field(default_factory=dict)
    tracing: dict[str, Any] = field(default_factory=dict)

    def get_variable(self, key: str, default: Any = None) -> Any:
        return self.variables.get(key, default)

    def set_variable(self, key: str, value: Any) -> None:
        self.variables[key] = value


@dataclass
class SagaState:
    """The seed's SagaState value object, derived from the steps."""

    phase: SagaPhase
    current_step: int
    total_steps: int
    completed_steps: list[str]
    pending_steps: list[str]
    compensation_steps: list[str]

    def can_proceed(self) -> bool:
        return self.phase is SagaPhase.FORWARD and bool(self.pending_steps)

    def requires_compensation(self) -> bool:
        return self.phase is SagaPhase.BACKWARD and bool(self.compensation_steps)

    def to_dict(self) -> dict[str, Any]:
        return {
            "phase": self.phase.value,
            "current_step": self.current_step,
            "total_steps": self.total_steps,
            "completed_steps": self.completed_steps,
            "pending_steps": self.pending_steps,
            "compensation_steps": self.compensation_steps,
        }
