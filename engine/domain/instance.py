"""The WorkflowInstance aggregate: state changes only by applying domain events.

``record(event)`` applies an event (refusing what the state machine forbids) and keeps it as
pending until the repository commits it. ``replay(events)`` rebuilds an instance from its stream;
``to_dict()`` is the stored snapshot, so ``replay(events).to_dict() == stored`` is the consistency
check of the seed's ``validateSagaConsistency``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from engine.domain import events as ev
from engine.domain.policies import compensation_budget
from engine.domain.status import (
    ConsistencyLevel,
    SagaPhase,
    StepStatus,
    WorkflowStatus,
    check_transition,
    is_terminal,
)
from engine.errors import IllegalTransition


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
        handler = _APPLY.get(type(e))
        if handler is None:
            raise ValueError(f"no handler for event {type(e).__name__}")
        if self.version == 0 and not isinstance(e, ev.WorkflowCreated):
            raise ValueError(f"a workflow's first event must be WorkflowCreated, got {type(e).__name__}")
        if self.version > 0 and e.workflow_id != self.workflow_id:
            raise ValueError(f"event for {e.workflow_id} applied to {self.workflow_id}")
        if self.version > 0 and self.is_terminal and not isinstance(e, _ALLOWED_AFTER_END):
            raise IllegalTransition(self.status.value, type(e).__name__, "cannot modify a finished workflow")
        handler(self, e)
        self.version += 1
        self.updated_at = e.at

    def _to(self, target: WorkflowStatus, detail: str = "") -> None:
        check_transition(self.status, target, detail)
        self.status = target

    def _on_created(self, e: ev.WorkflowCreated) -> None:
        if self.version:
            raise IllegalTransition(self.status.value, "CREATED", "workflow already exists")
        self.workflow_id = e.workflow_id
        self.workflow_type = e.workflow_type
        self.definition_version = e.definition_version
        self.consistency = ConsistencyLevel(e.consistency)
        # Shallow copies: events only ever replace top-level variables, never mutate nested values.
        self.input = dict(e.input)
        self.context = WorkflowContext(
            variables=dict(e.input),
            headers=dict(e.headers),
            security=dict(e.security),
            tracing=dict(e.tracing),
        )
        self.correlation_id = e.correlation_id
        self.created_at = e.at
        self.deadline = e.deadline
        self.resources = list(e.resources)
        self.steps = [
            StepExecution(
                step_id=p["id"],
                step_type=p["step_type"],
                target=p["target"],
                depends_on=list(p["depends_on"]),
                compensation_type=p["compensation_type"],
                idempotent=p.get("idempotent", True),
            )
            for p in e.plan
        ]
        self._index = {s.step_id: s for s in self.steps}
        self.status = WorkflowStatus.CREATED

    def _on_started(self, e: ev.WorkflowStarted) -> None:
        self._to(WorkflowStatus.RUNNING)
        self.started_at = e.at
        self.waiting_for_lock = False

    def _on_lock_waiting(self, e: ev.ResourceLockWaiting) -> None:
        if self.status is not WorkflowStatus.CREATED:
            raise IllegalTransition(self.status.value, "ResourceLockWaiting", "only a CREATED saga waits for locks")
        self.waiting_for_lock = True

    def _on_step_started(self, e: ev.StepStarted) -> None:
        step = self.step(e.step_id)
        if self.status is not WorkflowStatus.RUNNING:
            raise IllegalTransition(self.status.value, "StepStarted", "steps start only while RUNNING")
        recovering = e.recovered and step.status is StepStatus.RUNNING
        if step.status not in (StepStatus.PENDING, StepStatus.WAITING_RETRY) and not recovering:
            raise IllegalTransition(step.status.value, "RUNNING", f"step {e.step_id} cannot start")
        for dep in step.depends_on:
            if self.step(dep).status is not StepStatus.COMPLETED:
                raise IllegalTransition(step.status.value, "RUNNING", f"step {e.step_id} waits for {dep}")
        step.status = StepStatus.RUNNING
        step.attempt = e.attempt
        step.idempotency_key = e.idempotency_key
        step.input = e.input
        step.started_at = e.at
        step.next_attempt_at = None

    def _on_step_executed(self, e: ev.StepExecuted) -> None:
        step = self.step(e.step_id)
        if step.status is not StepStatus.RUNNING or step.attempt != e.attempt:
            raise IllegalTransition(
                step.status.value, "COMPLETED", f"step {e.step_id} attempt {e.attempt} is not running"
            )
        step.status = StepStatus.COMPLETED
        step.output = e.output
        step.error = None
        step.ended_at = e.at
        step.execution_time = e.execution_time
        self.completed_count += 1
        step.completed_seq = self.completed_count
        if isinstance(e.output, dict):
            self.context.variables.update(e.output)
        self._push(step)
        self._rebase_compensation(e.at)

    def _on_step_failed(self, e: ev.StepFailed) -> None:
        step = self.step(e.step_id)
        if step.status is not StepStatus.RUNNING or step.attempt != e.attempt:
            raise IllegalTransition(step.status.value, "FAILED", f"step {e.step_id} attempt {e.attempt} is not running")
        if e.will_retry and self.status not in (WorkflowStatus.RUNNING, WorkflowStatus.PAUSED):
            raise IllegalTransition(
                self.status.value, "WAITING_RETRY", f"step {e.step_id} cannot retry once compensating"
            )
        step.error = {"type": e.error_type, "message": e.reason}
        step.ended_at = e.at
        step.execution_time = e.execution_time
        step.uncertain = step.uncertain or e.uncertain
        if e.will_retry:
            step.status = StepStatus.WAITING_RETRY
            step.next_attempt_at = e.next_attempt_at
            self.total_retries += 1
        else:
            step.status = StepStatus.FAILED
            step.next_attempt_at = None
            if step.uncertain:
                self._push(step)
        self._rebase_compensation(e.at)

    def _on_paused(self, e: ev.WorkflowPaused) -> None:
        self._to(WorkflowStatus.PAUSED)
        self.paused_at = e.at

    def _on_resumed(self, e: ev.WorkflowResumed) -> None:
        if self.status is not WorkflowStatus.PAUSED:
            raise IllegalTransition(self.status.value, "RUNNING", "only a PAUSED workflow can be resumed")
        self._to(WorkflowStatus.RUNNING)
        self.paused_at = None

    def _on_cancelled(self, e: ev.WorkflowCancelled) -> None:
        if self.status is WorkflowStatus.CREATED:
            self._to(WorkflowStatus.CANCELLED)
            self.finished_at = e.at
            self.reason = e.reason
        elif self.status in (WorkflowStatus.RUNNING, WorkflowStatus.PAUSED):
            # RUNNING/PAUSED -> COMPENSATING happens with the CompensationStarted that follows.
            self.reason = e.reason
        else:
            raise IllegalTransition(self.status.value, "CANCELLED", "only CREATED, RUNNING or PAUSED can be cancelled")

    def _on_failed(self, e: ev.WorkflowFailed) -> None:
        self._to(WorkflowStatus.FAILED)
        self.reason = e.reason

    def _on_timeout(self, e: ev.WorkflowTimeout) -> None:
        self._to(WorkflowStatus.TIMEOUT)
        self.reason = f"workflow deadline passed after {e.elapsed_time:.3f}s"

    def _on_compensation_started(self, e: ev.CompensationStarted) -> None:
        self._to(WorkflowStatus.COMPENSATING)
        # Steps waiting for a retry are given up; one whose earlier attempt may have applied its
        # effect (timed out) is compensated like a completed one.
        for step in self.steps:
            if step.status is StepStatus.WAITING_RETRY:
                step.status = StepStatus.FAILED
                step.next_attempt_at = None
                if step.uncertain:
                    self._push(step)
        self.compensation_reason = e.reason
        self.compensation_started_at = e.at
        self.compensation_deadline = e.compensation_deadline
        self.forward_time = e.at - (self.started_at or self.created_at)
        self.paused_at = None

    def _on_comp_step_started(self, e: ev.CompensationStepStarted) -> None:
        self._require_compensating("CompensationStepStarted")
        if not self.compensation_stack or self.compensation_stack[-1] != e.step_id:
            raise IllegalTransition(
                self.status.value, "CompensationStepStarted", f"{e.step_id} is not on top of the stack"
            )
        step = self.step(e.step_id)
        step.status = StepStatus.COMPENSATING
        step.comp_attempt = e.attempt
        step.comp_via = e.via
        step.comp_running = True
        step.comp_next_attempt_at = None
        if step.comp_started_at is None:
            step.comp_started_at = e.at

    def _on_step_compensated(self, e: ev.StepCompensated) -> None:
        self._require_compensating("StepCompensated")
        step = self._pop(e.step_id)
        step.status = StepStatus.COMPENSATED
        step.comp_via = e.via
        step.comp_error = None
        step.comp_running = False
        step.comp_ended_at = e.at
        if e.step_id in self.failed_compensations:
            self.failed_compensations.remove(e.step_id)

    def _on_compensation_failed(self, e: ev.CompensationFailed) -> None:
        self._require_compensating("CompensationFailed")
        if not self.compensation_stack or self.compensation_stack[-1] != e.step_id:
            raise IllegalTransition(self.status.value, "CompensationFailed", f"{e.step_id} is not on top of the stack")
        step = self.step(e.step_id)
        step.comp_error = {"type": e.error_type, "message": e.reason}
        step.comp_running = False
        if e.will_retry:
            step.comp_next_attempt_at = e.next_attempt_at
            self.compensation_retries += 1
            return
        self._pop(e.step_id)
        step.status = StepStatus.COMPENSATION_FAILED
        step.comp_ended_at = e.at
        if e.step_id not in self.failed_compensations:
            self.failed_compensations.append(e.step_id)

    def _on_parked(self, e: ev.CompensationParked) -> None:
        self._require_compensating("CompensationParked")
        step = self._pop(e.step_id)
        step.status = StepStatus.COMPENSATION_PARKED
        step.comp_via = "manual"
        step.comp_running = False
        step.comp_ended_at = e.at
        if e.step_id not in self.failed_compensations:
            self.failed_compensations.append(e.step_id)

    def _on_compensation_timeout(self, e: ev.CompensationTimeout) -> None:
        self._require_compensating("CompensationTimeout")
        self.compensation_timed_out = True

    def _on_compensated(self, e: ev.WorkflowCompensated) -> None:
        if self.compensation_stack:
            raise IllegalTransition(
                self.status.value, "COMPENSATED", f"{len(self.compensation_stack)} compensations left"
            )
        self._to(WorkflowStatus.COMPENSATED)
        self.finished_at = e.at
        self.requires_attention = e.requires_attention
        self.failed_compensations = list(e.failed_compensations)

    def _on_completed(self, e: ev.WorkflowCompleted) -> None:
        unfinished = [s.step_id for s in self.steps if s.status is not StepStatus.COMPLETED]
        if unfinished:
            raise IllegalTransition(self.status.value, "COMPLETED", f"steps not completed: {unfinished}")
        self._to(WorkflowStatus.COMPLETED)
        self.finished_at = e.at
        self.forward_time = e.at - (self.started_at or self.created_at)
        self.result = e.result

    def _on_retry_requested(self, e: ev.CompensationRetryRequested) -> None:
        if self.status is not WorkflowStatus.COMPENSATED:
            raise IllegalTransition(
                self.status.value, "COMPENSATING", "only a COMPENSATED workflow retries compensations"
            )
        requested = list(dict.fromkeys(e.steps))
        missing = [s for s in requested if s not in self.failed_compensations]
        if not requested or missing:
            raise IllegalTransition(
                self.status.value, "COMPENSATING", f"no failed compensation for {missing or 'any step'}"
            )
        self._to(WorkflowStatus.COMPENSATING)
        # Put them back so the oldest completion is compensated last, as LIFO requires.
        order = sorted(requested, key=lambda s: self.step(s).stack_seq or 0)
        for step_id in order:
            step = self.step(step_id)
            step.status = StepStatus.COMPLETED if step.completed_seq is not None else StepStatus.FAILED
            step.comp_attempt = 0
            step.comp_error = None
            step.comp_next_attempt_at = None
            step.comp_operator_retry = True
            self.compensation_stack.append(step_id)  # keeps its original stack_seq
        self.finished_at = None
        self.compensation_reason = "operator retry"
        self.compensation_started_at = e.at
        self.compensation_deadline = e.at + compensation_budget(self.forward_time or 0.0)
        self.compensation_timed_out = False

    def _rebase_compensation(self, at: float) -> None:
        """A forward step that was in flight when compensation began (a cancel) ends now: compensation
        can only really start here, and the forward time includes that step."""
        if self.status is WorkflowStatus.COMPENSATING and self.compensation_started_at is not None:
            self.forward_time = at - (self.started_at or self.created_at)
            self.compensation_started_at = at
            self.compensation_deadline = at + compensation_budget(self.forward_time)

    def _push(self, step: StepExecution) -> None:
        self.pushed_count += 1
        step.stack_seq = self.pushed_count
        self.compensation_stack.append(step.step_id)

    def _require_compensating(self, what: str) -> None:
        if self.status is not WorkflowStatus.COMPENSATING:
            raise IllegalTransition(self.status.value, what, "only while COMPENSATING")

    def _pop(self, step_id: str) -> StepExecution:
        if not self.compensation_stack or self.compensation_stack[-1] != step_id:
            raise IllegalTransition(
                self.status.value, "compensate", f"{step_id} is not on top of the compensation stack"
            )
        self.compensation_stack.pop()
        return self.step(step_id)

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


_ALLOWED_AFTER_END = (ev.CompensationRetryRequested,)

_APPLY = {
    ev.WorkflowCreated: WorkflowInstance._on_created,
    ev.WorkflowStarted: WorkflowInstance._on_started,
    ev.ResourceLockWaiting: WorkflowInstance._on_lock_waiting,
    ev.StepStarted: WorkflowInstance._on_step_started,
    ev.StepExecuted: WorkflowInstance._on_step_executed,
    ev.StepFailed: WorkflowInstance._on_step_failed,
    ev.WorkflowPaused: WorkflowInstance._on_paused,
    ev.WorkflowResumed: WorkflowInstance._on_resumed,
    ev.WorkflowCancelled: WorkflowInstance._on_cancelled,
    ev.WorkflowFailed: WorkflowInstance._on_failed,
    ev.WorkflowTimeout: WorkflowInstance._on_timeout,
    ev.CompensationStarted: WorkflowInstance._on_compensation_started,
    ev.CompensationStepStarted: WorkflowInstance._on_comp_step_started,
    ev.StepCompensated: WorkflowInstance._on_step_compensated,
    ev.CompensationFailed: WorkflowInstance._on_compensation_failed,
    ev.CompensationParked: WorkflowInstance._on_parked,
    ev.CompensationTimeout: WorkflowInstance._on_compensation_timeout,
    ev.WorkflowCompensated: WorkflowInstance._on_compensated,
    ev.WorkflowCompleted: WorkflowInstance._on_completed,
    ev.CompensationRetryRequested: WorkflowInstance._on_retry_requested,
}
