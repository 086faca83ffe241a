"""The WorkflowInstance aggregate: state changes only by applying domain events.

``record(event)`` applies an event (refusing what the state machine forbids) and keeps it as
pending until the repository commits it. ``replay(events)`` rebuilds an instance from its stream;
``to_dict()`` is the stored snapshot, so ``replay(events).to_dict() == stored`` is the consistency
check of the seed's ``validateSagaConsistency``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from engine.domain import events as ev
from engine.domain.evolve import ALLOWED_AFTER_END, APPLY
from engine.domain.policies import MIN_COMPENSATION_BUDGET
from engine.domain.status import ConsistencyLevel, SagaPhase, StepStatus, WorkflowStatus, is_terminal
from engine.domain.steps import SagaState, StepExecution, WorkflowContext
from engine.errors import IllegalTransition


class WorkflowInstance:
    """Aggregate root. Build with ``create()`` or ``replay()``; change with ``record()``."""

    def __init__(self) -> None:
        self.workflow_id: str = ""
        self.workflow_type: str = ""
        self.definition_version: int = 0
        self.status: WorkflowStatus = WorkflowStatus.CREATED
        self.consistency: ConsistencyLevel = ConsistencyLevel.AT_LEAST_ONCE
        self.steps: list[StepExecution] = []
        self.compensation_stack: list[str] = []
        self.context = WorkflowContext()
        self.correlation_id: str = ""
        self.input: dict[str, Any] = {}
        self.resources: list[str] = []
        # time constraints
        self.created_at: float = 0.0
        self.started_at: float | None = None
        self.deadline: float = 0.0
        self.finished_at: float | None = None
        self.paused_at: float | None = None
        self.compensation_started_at: float | None = None
        self.compensation_deadline: float | None = None
        self.compensation_floor: float = MIN_COMPENSATION_BUDGET
        """The least compensation budget granted, kept when the deadline moves."""
        self.forward_time: float | None = None
        # retry state and metrics
        self.total_retries: int = 0
        self.compensation_retries: int = 0
        self.completed_count: int = 0
        self.pushed_count: int = 0
        # outcome
        self.reason: str | None = None
        self.compensation_reason: str | None = None
        self.requires_attention: bool = False
        self.failed_compensations: list[str] = []
        self.compensation_timed_out: bool = False
        self.waiting_for_lock: bool = False
        self.result: dict[str, Any] | None = None
        self.version: int = 0
        self.updated_at: float = 0.0
        self.pending: list[ev.DomainEvent] = []
        self._index: dict[str, StepExecution] = {}

    # ------------------------------------------------------------------ construction
    @classmethod
    def create(cls, created: ev.WorkflowCreated) -> WorkflowInstance:
        inst = cls()
        inst.record(created)
        return inst

    @classmethod
    def replay(cls, events: Iterable[ev.DomainEvent]) -> WorkflowInstance:
        inst = cls()
        for e in events:
            inst.apply(e)
        return inst

    def record(self, event: ev.DomainEvent) -> ev.DomainEvent:
        self.apply(event)
        self.pending.append(event)
        return event

    def take_pending(self) -> list[ev.DomainEvent]:
        out, self.pending = self.pending, []
        return out

    # ------------------------------------------------------------------ queries
    def step(self, step_id: str) -> StepExecution:
        try:
            return self._index[step_id]
        except KeyError:
            raise KeyError(f"workflow {self.workflow_id} has no step {step_id!r}")

    @property
    def is_terminal(self) -> bool:
        return is_terminal(self.status)

    @property
    def phase(self) -> SagaPhase:
        if self.status in (WorkflowStatus.COMPENSATING, WorkflowStatus.COMPENSATED):
            return SagaPhase.BACKWARD
        return SagaPhase.FORWARD

    @property
    def saga_state(self) -> SagaState:
        started = [i for i, s in enumerate(self.steps) if s.attempt > 0]
        return SagaState(
            phase=self.phase,
            current_step=max(started) if started else -1,
            total_steps=len(self.steps),
            completed_steps=[
                s.step_id
                for s in sorted(
                    (s for s in self.steps if s.completed_seq is not None), key=lambda s: s.completed_seq or 0
                )
            ],
            pending_steps=[s.step_id for s in self.steps if s.status in (StepStatus.PENDING, StepStatus.WAITING_RETRY)],
            compensation_steps=list(reversed(self.compensation_stack)),
        )

    def stack_when_compensating(self) -> list[str]:
        """The compensation stack as CompensationStarted will leave it (top last)."""
        extra = [s.step_id for s in self.steps if s.status is StepStatus.WAITING_RETRY and s.uncertain]
        return [*self.compensation_stack, *extra]

    def last_executed_step(self) -> str | None:
        done = [s for s in self.steps if s.completed_seq is not None]
        return max(done, key=lambda s: s.completed_seq or 0).step_id if done else None

    # ------------------------------------------------------------------ event application
    def apply(self, e: ev.DomainEvent) -> None:
        handler = APPLY.get(type(e))
        if handler is None:
            raise ValueError(f"no handler for event {type(e).__name__}")
        if self.version == 0 and not isinstance(e, ev.WorkflowCreated):
            raise ValueError(f"a workflow's first event must be WorkflowCreated, got {type(e).__name__}")
        if self.version > 0 and e.workflow_id != self.workflow_id:
            raise ValueError(f"event for {e.workflow_id} applied to {self.workflow_id}")
        if self.version > 0 and self.is_terminal and not isinstance(e, ALLOWED_AFTER_END):
            raise IllegalTransition(self.status.value, type(e).__name__, "cannot modify a finished workflow")
        handler(self, e)
        self.version += 1
        self.updated_at = e.at

    # ------------------------------------------------------------------ snapshot
    def to_dict(self) -> dict[str, Any]:
        data = self.snapshot()
        data["steps"] = [s.to_dict() for s in self.steps]
        return data

    def snapshot(self) -> dict[str, Any]:
        """``to_dict()`` with the steps left as StepExecution dataclasses, for an encoder that
        serialises dataclasses natively (orjson): the snapshot is written at every step."""
        return {
            "workflow_id": self.workflow_id,
            "workflow_type": self.workflow_type,
            "definition_version": self.definition_version,
            "status": self.status.value,
            "consistency": self.consistency.value,
            "correlation_id": self.correlation_id,
            "input": self.input,
            "resources": self.resources,
            "steps": self.steps,
            "compensation_stack": list(self.compensation_stack),
            # Shallow copies suffice: events only ever replace top-level values, never mutate nested ones.
            "context": {
                "variables": dict(self.context.variables),
                "headers": dict(self.context.headers),
                "security": dict(self.context.security),
                "tracing": dict(self.context.tracing),
            },
            "time_constraints": {
                "created_at": self.created_at,
                "started_at": self.started_at,
                "deadline": self.deadline,
                "finished_at": self.finished_at,
                "paused_at": self.paused_at,
                "compensation_started_at": self.compensation_started_at,
                "compensation_deadline": self.compensation_deadline,
                "compensation_floor": self.compensation_floor,
            },
            "retry_state": {"total_retries": self.total_retries, "compensation_retries": self.compensation_retries},
            "metrics": self.metrics(),
            "reason": self.reason,
            "compensation_reason": self.compensation_reason,
            "requires_attention": self.requires_attention,
            "failed_compensations": list(self.failed_compensations),
            "compensation_timed_out": self.compensation_timed_out,
            "waiting_for_lock": self.waiting_for_lock,
            "result": self.result,
            "completed_count": self.completed_count,
            "pushed_count": self.pushed_count,
            "forward_time": self.forward_time,
            "version": self.version,
            "updated_at": self.updated_at,
        }

    def metrics(self) -> dict[str, Any]:
        durations = [s.execution_time for s in self.steps if s.status is not StepStatus.PENDING and s.execution_time]
        end = self.finished_at
        return {
            "steps_completed": self.completed_count,
            "step_time_total": sum(durations),
            "retries": self.total_retries,
            "duration": (end - self.created_at) if end else None,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WorkflowInstance:
        inst = cls()
        inst.workflow_id = data["workflow_id"]
        inst.workflow_type = data["workflow_type"]
        inst.definition_version = data["definition_version"]
        inst.status = WorkflowStatus(data["status"])
        inst.consistency = ConsistencyLevel(data["consistency"])
        inst.correlation_id = data["correlation_id"]
        inst.input = data["input"]
        inst.resources = data["resources"]
        inst.steps = [StepExecution.from_dict(s) for s in data["steps"]]
        inst._index = {s.step_id: s for s in inst.steps}
        inst.compensation_stack = list(data["compensation_stack"])
        ctx = data["context"]
        inst.context = WorkflowContext(ctx["variables"], ctx["headers"], ctx["security"], ctx["tracing"])
        tc = data["time_constraints"]
        inst.created_at = tc["created_at"]
        inst.started_at = tc["started_at"]
        inst.deadline = tc["deadline"]
        inst.finished_at = tc["finished_at"]
        inst.paused_at = tc["paused_at"]
        inst.compensation_started_at = tc["compensation_started_at"]
        inst.compensation_deadline = tc["compensation_deadline"]
        inst.compensation_floor = tc.get("compensation_floor", MIN_COMPENSATION_BUDGET)
        inst.total_retries = data["retry_state"]["total_retries"]
        inst.compensation_retries = data["retry_state"]["compensation_retries"]
        inst.reason = data["reason"]
        inst.compensation_reason = data["compensation_reason"]
        inst.requires_attention = data["requires_attention"]
        inst.failed_compensations = list(data["failed_compensations"])
        inst.compensation_timed_out = data["compensation_timed_out"]
        inst.waiting_for_lock = data["waiting_for_lock"]
        inst.result = data["result"]
        inst.completed_count = data["completed_count"]
        inst.pushed_count = data.get("pushed_count", len(inst.compensation_stack))
        inst.forward_time = data["forward_time"]
        inst.version = data["version"]
        inst.updated_at = data["updated_at"]
        return inst
