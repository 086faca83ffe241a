"""How each domain event changes a WorkflowInstance: one function per event type.

``WorkflowInstance.apply`` looks the event's function up in ``APPLY``. Each function checks what the
state machine allows (raising IllegalTransition) before it changes anything.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from engine.domain import events as ev
from engine.domain.policies import compensation_budget
from engine.domain.status import ConsistencyLevel, StepStatus, WorkflowStatus, check_transition
from engine.domain.steps import StepExecution, WorkflowContext
from engine.errors import IllegalTransition

if TYPE_CHECKING:
    from engine.domain.instance import WorkflowInstance


def _to(inst: WorkflowInstance, target: WorkflowStatus, detail: str = "") -> None:
    check_transition(inst.status, target, detail)
    inst.status = target


def on_created(inst: WorkflowInstance, e: ev.WorkflowCreated) -> None:
    if inst.version:
        raise IllegalTransition(inst.status.value, "CREATED", "workflow already exists")
    inst.workflow_id = e.workflow_id
    inst.workflow_type = e.workflow_type
    inst.definition_version = e.definition_version
    inst.consistency = ConsistencyLevel(e.consistency)
    # Shallow copies: events only ever replace top-level variables, never mutate nested values.
    inst.input = dict(e.input)
    inst.context = WorkflowContext(
        variables=dict(e.input),
        headers=dict(e.headers),
        security=dict(e.security),
        tracing=dict(e.tracing),
    )
    inst.correlation_id = e.correlation_id
    inst.created_at = e.at
    inst.deadline = e.deadline
    inst.resources = list(e.resources)
    inst.steps = [
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
    inst._index = {s.step_id: s for s in inst.steps}
    inst.status = WorkflowStatus.CREATED


def on_started(inst: WorkflowInstance, e: ev.WorkflowStarted) -> None:
    _to(inst, WorkflowStatus.RUNNING)
    inst.started_at = e.at
    inst.waiting_for_lock = False


def on_lock_waiting(inst: WorkflowInstance, e: ev.ResourceLockWaiting) -> None:
    if inst.status is not WorkflowStatus.CREATED:
        raise IllegalTransition(inst.status.value, "ResourceLockWaiting", "only a CREATED saga waits for locks")
    inst.waiting_for_lock = True


def on_step_started(inst: WorkflowInstance, e: ev.StepStarted) -> None:
    step = inst.step(e.step_id)
    if inst.status is not WorkflowStatus.RUNNING:
        raise IllegalTransition(inst.status.value, "StepStarted", "steps start only while RUNNING")
    recovering = e.recovered and step.status is StepStatus.RUNNING
    if step.status not in (StepStatus.PENDING, StepStatus.WAITING_RETRY) and not recovering:
        raise IllegalTransition(step.status.value, "RUNNING", f"step {e.step_id} cannot start")
    for dep in step.depends_on:
        if inst.step(dep).status is not StepStatus.COMPLETED:
            raise IllegalTransition(step.status.value, "RUNNING", f"step {e.step_id} waits for {dep}")
    step.status = StepStatus.RUNNING
    step.attempt = e.attempt
    step.idempotency_key = e.idempotency_key
    step.input = e.input
    step.started_at = e.at
    step.next_attempt_at = None


def on_step_executed(inst: WorkflowInstance, e: ev.StepExecuted) -> None:
    step = inst.step(e.step_id)
    if step.status is not StepStatus.RUNNING or step.attempt != e.attempt:
        raise IllegalTransition(step.status.value, "COMPLETED", f"step {e.step_id} attempt {e.attempt} is not running")
    step.status = StepStatus.COMPLETED
    step.output = e.output
    step.error = None
    step.ended_at = e.at
    step.execution_time = e.execution_time
    inst.completed_count += 1
    step.completed_seq = inst.completed_count
    if isinstance(e.output, dict):
        inst.context.variables.update(e.output)
    _push(inst, step)
    _rebase_compensation(inst, e.at)


def on_step_failed(inst: WorkflowInstance, e: ev.StepFailed) -> None:
    step = inst.step(e.step_id)
    if step.status is not StepStatus.RUNNING or step.attempt != e.attempt:
        raise IllegalTransition(step.status.value, "FAILED", f"step {e.step_id} attempt {e.attempt} is not running")
    if e.will_retry and inst.status not in (WorkflowStatus.RUNNING, WorkflowStatus.PAUSED):
        raise IllegalTransition(inst.status.value, "WAITING_RETRY", f"step {e.step_id} cannot retry once compensating")
    step.error = {"type": e.error_type, "message": e.reason}
    step.ended_at = e.at
    step.execution_time = e.execution_time
    step.uncertain = step.uncertain or e.uncertain
    if e.will_retry:
        step.status = StepStatus.WAITING_RETRY
        step.next_attempt_at = e.next_attempt_at
        inst.total_retries += 1
    else:
        step.status = StepStatus.FAILED
        step.next_attempt_at = None
        if step.uncertain:
            _push(inst, step)
    _rebase_compensation(inst, e.at)


def on_paused(inst: WorkflowInstance, e: ev.WorkflowPaused) -> None:
    _to(inst, WorkflowStatus.PAUSED)
    inst.paused_at = e.at


def on_resumed(inst: WorkflowInstance, e: ev.WorkflowResumed) -> None:
    if inst.status is not WorkflowStatus.PAUSED:
        raise IllegalTransition(inst.status.value, "RUNNING", "only a PAUSED workflow can be resumed")
    _to(inst, WorkflowStatus.RUNNING)
    inst.paused_at = None


def on_cancelled(inst: WorkflowInstance, e: ev.WorkflowCancelled) -> None:
    if inst.status is WorkflowStatus.CREATED:
        _to(inst, WorkflowStatus.CANCELLED)
        inst.finished_at = e.at
        inst.reason = e.reason
    elif inst.status in (WorkflowStatus.RUNNING, WorkflowStatus.PAUSED):
        # RUNNING/PAUSED -> COMPENSATING happens with the CompensationStarted that follows.
        inst.reason = e.reason
    else:
        raise IllegalTransition(inst.status.value, "CANCELLED", "only CREATED, RUNNING or PAUSED can be cancelled")


def on_failed(inst: WorkflowInstance, e: ev.WorkflowFailed) -> None:
    _to(inst, WorkflowStatus.FAILED)
    inst.reason = e.reason


def on_timeout(inst: WorkflowInstance, e: ev.WorkflowTimeout) -> None:
    _to(inst, WorkflowStatus.TIMEOUT)
    inst.reason = f"workflow deadline passed after {e.elapsed_time:.3f}s"


def on_compensation_started(inst: WorkflowInstance, e: ev.CompensationStarted) -> None:
    _to(inst, WorkflowStatus.COMPENSATING)
    # Steps waiting for a retry are given up; one whose earlier attempt may have applied its
    # effect (timed out) is compensated like a completed one.
    for step in inst.steps:
        if step.status is StepStatus.WAITING_RETRY:
            step.status = StepStatus.FAILED
            step.next_attempt_at = None
            if step.uncertain:
                _push(inst, step)
    inst.compensation_reason = e.reason
    inst.compensation_started_at = e.at
    inst.compensation_deadline = e.compensation_deadline
    inst.compensation_floor = e.budget_floor
    inst.forward_time = e.at - (inst.started_at or inst.created_at)
    inst.paused_at = None


def on_comp_step_started(inst: WorkflowInstance, e: ev.CompensationStepStarted) -> None:
    _require_compensating(inst, "CompensationStepStarted")
    if not inst.compensation_stack or inst.compensation_stack[-1] != e.step_id:
        raise IllegalTransition(inst.status.value, "CompensationStepStarted", f"{e.step_id} is not on top of the stack")
    step = inst.step(e.step_id)
    step.status = StepStatus.COMPENSATING
    step.comp_attempt = e.attempt
    step.comp_via = e.via
    step.comp_running = True
    step.comp_next_attempt_at = None
    if step.comp_started_at is None:
        step.comp_started_at = e.at


def on_step_compensated(inst: WorkflowInstance, e: ev.StepCompensated) -> None:
    _require_compensating(inst, "StepCompensated")
    step = _pop(inst, e.step_id)
    step.status = StepStatus.COMPENSATED
    step.comp_via = e.via
    step.comp_error = None
    step.comp_running = False
    step.comp_ended_at = e.at
    if e.step_id in inst.failed_compensations:
        inst.failed_compensations.remove(e.step_id)


def on_compensation_failed(inst: WorkflowInstance, e: ev.CompensationFailed) -> None:
    _require_compensating(inst, "CompensationFailed")
    if not inst.compensation_stack or inst.compensation_stack[-1] != e.step_id:
        raise IllegalTransition(inst.status.value, "CompensationFailed", f"{e.step_id} is not on top of the stack")
    step = inst.step(e.step_id)
    step.comp_error = {"type": e.error_type, "message": e.reason}
    step.comp_running = False
    if e.will_retry:
        step.comp_next_attempt_at = e.next_attempt_at
        inst.compensation_retries += 1
        return
    _pop(inst, e.step_id)
    step.status = StepStatus.COMPENSATION_FAILED
    step.comp_ended_at = e.at
    if e.step_id not in inst.failed_compensations:
        inst.failed_compensations.append(e.step_id)


def on_parked(inst: WorkflowInstance, e: ev.CompensationParked) -> None:
    _require_compensating(inst, "CompensationParked")
    step = _pop(inst, e.step_id)
    step.status = StepStatus.COMPENSATION_PARKED
    step.comp_via = "manual"
    step.comp_running = False
    step.comp_ended_at = e.at
    if e.step_id not in inst.failed_compensations:
        inst.failed_compensations.append(e.step_id)


def on_compensation_timeout(inst: WorkflowInstance, e: ev.CompensationTimeout) -> None:
    _require_compensating(inst, "CompensationTimeout")
    inst.compensation_timed_out = True


def on_compensated(inst: WorkflowInstance, e: ev.WorkflowCompensated) -> None:
    if inst.compensation_stack:
        raise IllegalTransition(inst.status.value, "COMPENSATED", f"{len(inst.compensation_stack)} compensations left")
    _to(inst, WorkflowStatus.COMPENSATED)
    inst.finished_at = e.at
    inst.requires_attention = e.requires_attention
    inst.failed_compensations = list(e.failed_compensations)


def on_completed(inst: WorkflowInstance, e: ev.WorkflowCompleted) -> None:
    unfinished = [s.step_id for s in inst.steps if s.status is not StepStatus.COMPLETED]
    if unfinished:
        raise IllegalTransition(inst.status.value, "COMPLETED", f"steps not completed: {unfinished}")
    _to(inst, WorkflowStatus.COMPLETED)
    inst.finished_at = e.at
    inst.forward_time = e.at - (inst.started_at or inst.created_at)
    inst.result = e.result


def on_retry_requested(inst: WorkflowInstance, e: ev.CompensationRetryRequested) -> None:
    if inst.status is not WorkflowStatus.COMPENSATED:
        raise IllegalTransition(inst.status.value, "COMPENSATING", "only a COMPENSATED workflow retries compensations")
    requested = list(dict.fromkeys(e.steps))
    missing = [s for s in requested if s not in inst.failed_compensations]
    if not requested or missing:
        raise IllegalTransition(
            inst.status.value, "COMPENSATING", f"no failed compensation for {missing or 'any step'}"
        )
    _to(inst, WorkflowStatus.COMPENSATING)
    # Put them back so the oldest completion is compensated last, as LIFO requires.
    order = sorted(requested, key=lambda s: inst.step(s).stack_seq or 0)
    for step_id in order:
        step = inst.step(step_id)
        step.status = StepStatus.COMPLETED if step.completed_seq is not None else StepStatus.FAILED
        step.comp_attempt = 0
        step.comp_error = None
        step.comp_next_attempt_at = None
        step.comp_operator_retry = True
        inst.compensation_stack.append(step_id)  # keeps its original stack_seq
    inst.finished_at = None
    inst.compensation_reason = "operator retry"
    inst.compensation_started_at = e.at
    inst.compensation_deadline = (
        e.compensation_deadline
        if e.compensation_deadline is not None
        else e.at + compensation_budget(inst.forward_time or 0.0, inst.compensation_floor)
    )
    inst.compensation_timed_out = False


def _rebase_compensation(inst: WorkflowInstance, at: float) -> None:
    """A forward step that was in flight when compensation began (a cancel) ends now: compensation
    can only really start here, and the forward time includes that step."""
    if inst.status is WorkflowStatus.COMPENSATING and inst.compensation_started_at is not None:
        inst.forward_time = at - (inst.started_at or inst.created_at)
        inst.compensation_started_at = at
        inst.compensation_deadline = at + compensation_budget(inst.forward_time, inst.compensation_floor)


def _push(inst: WorkflowInstance, step: StepExecution) -> None:
    inst.pushed_count += 1
    step.stack_seq = inst.pushed_count
    inst.compensation_stack.append(step.step_id)


def _require_compensating(inst: WorkflowInstance, what: str) -> None:
    if inst.status is not WorkflowStatus.COMPENSATING:
        raise IllegalTransition(inst.status.value, what, "only while COMPENSATING")


def _pop(inst: WorkflowInstance, step_id: str) -> StepExecution:
    if not inst.compensation_stack or inst.compensation_stack[-1] != step_id:
        raise IllegalTransition(inst.status.value, "compensate", f"{step_id} is not on top of the compensation stack")
    inst.compensation_stack.pop()
    return inst.step(step_id)


ALLOWED_AFTER_END = (ev.CompensationRetryRequested,)

APPLY: dict[type, Callable[[WorkflowInstance, Any], None]] = {
    ev.WorkflowCreated: on_created,
    ev.WorkflowStarted: on_started,
    ev.ResourceLockWaiting: on_lock_waiting,
    ev.StepStarted: on_step_started,
    ev.StepExecuted: on_step_executed,
    ev.StepFailed: on_step_failed,
    ev.WorkflowPaused: on_paused,
    ev.WorkflowResumed: on_resumed,
    ev.WorkflowCancelled: on_cancelled,
    ev.WorkflowFailed: on_failed,
    ev.WorkflowTimeout: on_timeout,
    ev.CompensationStarted: on_compensation_started,
    ev.CompensationStepStarted: on_comp_step_started,
    ev.StepCompensated: on_step_compensated,
    ev.CompensationFailed: on_compensation_failed,
    ev.CompensationParked: on_parked,
    ev.CompensationTimeout: on_compensation_timeout,
    ev.WorkflowCompensated: on_compensated,
    ev.WorkflowCompleted: on_completed,
    ev.CompensationRetryRequested: on_retry_requested,
}
