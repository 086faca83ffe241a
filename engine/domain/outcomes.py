"""What follows an outcome: pure rules that turn a decision, a step's result or a compensation's result
into the events to record.

``decide()`` (``engine.domain.saga``) says what a saga does next; the saga layer calls the integration
port where a decision needs a call, hands the result over as an :class:`AttemptResult`, and records
whatever these rules return. Time and randomness come in as arguments, so every rule is a plain
function of its inputs: retry or not and when, which compensation path, whether an interrupted step
re-runs, the compensation stack and its budget.
"""

from __future__ import annotations

import random
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from engine.domain import events as ev
from engine.domain.definition import StepDefinition
from engine.domain.instance import WorkflowInstance
from engine.domain.policies import (
    MIN_COMPENSATION_BUDGET,
    ActionRef,
    CompensationAction,
    CustomBackoff,
    compensation_budget,
)
from engine.domain.status import CompensationType, StepStatus, WorkflowStatus

TIMEOUT_ERROR = "StepTimeout"
"""An attempt that overran its time and was stopped (or returned late): its effect is unknown."""
STILL_RUNNING_ERROR = "AttemptStillRunning"
"""An attempt past its timeout and grace that could not be stopped: it may still act. Its step is
neither retried nor compensated meanwhile (the compensation is parked)."""
STILL_RUNNING_NOTE = "attempt-still-running"
INTERRUPTED_ERROR = "StepInterrupted"
MAX_MESSAGE = 2000


@dataclass(frozen=True, slots=True)
class AttemptResult:
    """What one call of a step action or compensation came back with, in the domain's terms."""

    ok: bool
    output: Any = None
    elapsed: float = 0.0
    error_type: str = ""
    error_mro: tuple[str, ...] = ()
    """Names of the error's classes, so a policy may name a base class."""
    retryable: bool = True
    """False when the error itself says it must not be retried."""
    message: str = ""
    retry_after: float = 0.0
    """Seconds before a retry can succeed (an open breaker's next trial)."""

    @classmethod
    def success(cls, output: Any = None, elapsed: float = 0.0) -> AttemptResult:
        return cls(True, output, elapsed)

    @classmethod
    def failure(
        cls,
        error_type: str,
        message: str = "",
        *,
        elapsed: float = 0.0,
        mro: tuple[str, ...] = (),
        retryable: bool = True,
        retry_after: float = 0.0,
    ) -> AttemptResult:
        return cls(False, None, elapsed, error_type, mro, retryable, (message or error_type)[:MAX_MESSAGE], retry_after)

    @property
    def uncertain(self) -> bool:
        return not self.ok and self.error_type in (TIMEOUT_ERROR, STILL_RUNNING_ERROR)


# ---------------------------------------------------------------------------------------------- keys
def idempotency_key(
    inst: WorkflowInstance, step: StepDefinition, attempt: int, fence: int | None, phase: str = ""
) -> str:
    """The key a call carries. A declared template wins; EXACTLY_ONCE and STRICT use a stable
    ``{workflow_id}:{step_id}``; EVENTUAL and AT_LEAST_ONCE promise no deduplication: one per execution."""
    suffix = f":{phase}" if phase else ""
    if step.idempotency_key:
        try:
            base = step.idempotency_key.format_map(
                {**inst.context.variables, "workflow_id": inst.workflow_id, "step_id": step.id}
            )
        except (KeyError, ValueError, IndexError):
            base = f"{inst.workflow_id}:{step.id}"
        return base + suffix
    if inst.consistency.stable_idempotency_key:
        return f"{inst.workflow_id}:{step.id}{suffix}"
    return f"{inst.workflow_id}:{step.id}{suffix}:{attempt}:{fence or 0}"


# ---------------------------------------------------------------------------------------------- forward
def start_steps(
    inst: WorkflowInstance,
    steps: Mapping[str, StepDefinition],
    step_ids: Collection[str],
    now: float,
    fence: int | None,
) -> list[ev.DomainEvent]:
    """The next attempt of each ready step, with the context variables it sees as input."""
    variables = inst.context.variables
    out: list[ev.DomainEvent] = []
    for sid in step_ids:
        attempt = inst.step(sid).attempt + 1
        key = idempotency_key(inst, steps[sid], attempt, fence)
        out.append(ev.StepStarted(inst.workflow_id, now, sid, attempt, key, dict(variables)))
    return out


def on_step_outcome(
    inst: WorkflowInstance,
    step: StepDefinition,
    result: AttemptResult,
    now: float,
    rng: random.Random,
    custom: CustomBackoff | None = None,
) -> list[ev.DomainEvent]:
    """A forward attempt ended: completed, or failed with a retry at a decided time, or failed for good.

    Nothing when the step is no longer running (given up meanwhile at the deadline). A retry waits its
    backoff, and at least until an open breaker admits a trial; it happens only while the saga still
    moves forward, the error is retryable by the step's policy, and attempts are left."""
    se = inst.step(step.id)
    if se.status is not StepStatus.RUNNING:
        return []
    if result.ok:
        return [ev.StepExecuted(inst.workflow_id, now, step.id, se.attempt, result.elapsed, result.output)]
    policy = step.retry
    forward = inst.status in (WorkflowStatus.RUNNING, WorkflowStatus.PAUSED)
    retryable = policy.is_retryable(result.error_type, result.error_mro, result.retryable)
    will_retry = forward and retryable and se.attempt < policy.max_attempts
    next_at = None
    if will_retry:
        next_at = now + max(policy.next_delay(se.attempt, rng, custom), result.retry_after)
    return [
        ev.StepFailed(
            inst.workflow_id,
            now,
            step.id,
            se.attempt,
            result.message or result.error_type,
            result.error_type,
            will_retry,
            next_at,
            result.uncertain,
            result.elapsed,
        )
    ]


@dataclass(frozen=True)
class Recovery:
    """What to do with steps recorded RUNNING that nobody executes (a worker died mid-step)."""

    events: list[ev.DomainEvent]
    rerun: str | None = None
    """The step to execute again now (its StepStarted is among the events), if any."""


def recover_interrupted(
    inst: WorkflowInstance,
    steps: Mapping[str, StepDefinition],
    step_ids: Collection[str],
    now: float,
    fence: int | None,
) -> Recovery:
    """An idempotent step of a saga moving forward re-runs (the first one; the rest on the next pass);
    any other interrupted step fails as uncertain, so that it is compensated if the saga gives it up."""
    forward = inst.status is WorkflowStatus.RUNNING
    out: list[ev.DomainEvent] = []
    for sid in step_ids:
        se = inst.step(sid)
        if forward and se.idempotent:
            key = idempotency_key(inst, steps[sid], se.attempt, fence)
            out.append(ev.StepStarted(inst.workflow_id, now, sid, se.attempt, key, se.input or {}, True))
            return Recovery(out, sid)
        reason = (
            "interrupted mid-flight; step is not idempotent, so it is not re-run"
            if not se.idempotent
            else "interrupted mid-flight while the saga stopped moving forward"
        )
        out.append(ev.StepFailed(inst.workflow_id, now, sid, se.attempt, reason, INTERRUPTED_ERROR, False, None, True))
    return Recovery(out)


def complete(inst: WorkflowInstance, now: float) -> list[ev.DomainEvent]:
    result = {s.step_id: s.output for s in inst.steps if s.output is not None}
    return [ev.WorkflowCompleted(inst.workflow_id, now, now, result=result, metrics=inst.metrics())]


def fail(
    inst: WorkflowInstance, step_id: str | None, reason: str, now: float, floor: float = MIN_COMPENSATION_BUDGET
) -> list[ev.DomainEvent]:
    """A step failed for good (or can never run): the saga fails and compensates."""
    return [ev.WorkflowFailed(inst.workflow_id, now, step_id, reason), _compensation_started(inst, now, reason, floor)]


def time_out(
    inst: WorkflowInstance, abandoned: Mapping[str, bool], now: float, floor: float = MIN_COMPENSATION_BUDGET
) -> list[ev.DomainEvent]:
    """The workflow deadline passed: the attempts that were in flight have been stopped (``abandoned``:
    step id -> still running, for a blocking one that would not end within its grace). Each is given up
    as uncertain, then the saga times out and compensates."""
    out: list[ev.DomainEvent] = []
    for sid, still_running in abandoned.items():
        reason = "abandoned at the workflow deadline"
        if still_running:
            reason += "; its attempt could not be stopped and may still act"
        error = STILL_RUNNING_ERROR if still_running else TIMEOUT_ERROR
        out.append(ev.StepFailed(inst.workflow_id, now, sid, inst.step(sid).attempt, reason, error, False, None, True))
    last = inst.last_executed_step()
    out.append(ev.WorkflowTimeout(inst.workflow_id, now, last, now - inst.created_at))
    # Built against the state after those events: the given-up steps join the stack as uncertain.
    preview = _preview(inst, out)
    out.append(_compensation_started(preview, now, "timeout", floor))
    return out


# ---------------------------------------------------------------------------------------------- backward
def begin_compensation(
    inst: WorkflowInstance, now: float, reason: str, floor: float = MIN_COMPENSATION_BUDGET
) -> list[ev.DomainEvent]:
    """A FAILED or TIMEOUT saga (or one recovered in that state) starts compensating."""
    return [_compensation_started(inst, now, reason, floor)]


def _compensation_started(inst: WorkflowInstance, now: float, reason: str, floor: float) -> ev.CompensationStarted:
    """The stack to undo (LIFO, uncertain attempts included) and the budget: 2x the forward time, and at
    least ``floor`` (which the engine sets to cover a recovery: see ``EngineSettings.compensation_floor``)."""
    forward_time = now - (inst.started_at or inst.created_at)
    stack = inst.stack_when_compensating()
    deadline = now + compensation_budget(forward_time, floor)
    return ev.CompensationStarted(inst.workflow_id, now, reason, list(reversed(stack)), deadline, floor)


def compensation_timeout(inst: WorkflowInstance, now: float) -> list[ev.DomainEvent]:
    started = inst.compensation_started_at or now
    budget = (inst.compensation_deadline or now) - started
    return [ev.CompensationTimeout(inst.workflow_id, now, now - started, budget)]


def finish_compensation(inst: WorkflowInstance, now: float) -> list[ev.DomainEvent]:
    """The stack is empty: the saga ends COMPENSATED, needing attention if anything failed or overran."""
    failed = list(inst.failed_compensations)
    attention = bool(failed) or inst.compensation_timed_out
    reason = inst.compensation_reason or "failed"
    return [ev.WorkflowCompensated(inst.workflow_id, now, reason, attention, failed)]


@dataclass(frozen=True)
class CompensationPlan:
    """How the step on top of the stack is compensated now."""

    events: list[ev.DomainEvent]
    call: ActionRef | None = None
    """The action to call (undo or alternative); None when nothing is called (parked, operator-done)."""
    via: str = ""
    attempt: int = 0
    idempotency_key: str = ""
    timeout: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


def plan_compensation(inst: WorkflowInstance, step: StepDefinition, now: float, fence: int | None) -> CompensationPlan:
    """By the step's CompensationAction: MANUAL parks it for an operator (an operator's retry of a
    MANUAL step without an action counts as done), ALTERNATIVE calls the alternative when there is no
    undo or the undo failed, UNDO and RETRY call the undo. A step whose attempt may still be running is
    parked whatever its type (``attempt-still-running``) until an operator retries it."""
    comp = step.compensation
    if comp is None:
        raise ValueError(f"step {step.id} has no compensation")
    se = inst.step(step.id)
    wid = inst.workflow_id
    if (se.error or {}).get("type") == STILL_RUNNING_ERROR and not se.comp_operator_retry:
        # Undoing what may still be done would leak the effect the attempt applies after its undo.
        note = f"{STILL_RUNNING_NOTE}: {(se.error or {}).get('message', '')}".strip()
        return CompensationPlan([ev.CompensationParked(wid, now, step.id, note)])
    if comp.type is CompensationType.MANUAL and (comp.action is None or not se.comp_operator_retry):
        if comp.action is None and se.comp_operator_retry:
            return CompensationPlan([ev.StepCompensated(wid, now, step.id, se.comp_attempt + 1, "operator", 0.0)])
        return CompensationPlan([ev.CompensationParked(wid, now, step.id, comp.note)])
    use_alternative = comp.type is CompensationType.ALTERNATIVE and (
        comp.action is None or (se.comp_via == "action" and se.comp_error is not None)
    )
    via = "alternative" if use_alternative else "action"
    attempt = se.comp_attempt + 1
    key = idempotency_key(inst, step, attempt, fence, phase="compensate")
    return CompensationPlan(
        [ev.CompensationStepStarted(wid, now, step.id, attempt, via, key)],
        comp.alternative if use_alternative else comp.action,
        via,
        attempt,
        key,
        comp.timeout or step.timeout,
    )


def on_compensation_outcome(
    inst: WorkflowInstance,
    step_id: str,
    comp: CompensationAction,
    attempt: int,
    via: str,
    result: AttemptResult,
    now: float,
    rng: random.Random,
) -> list[ev.DomainEvent]:
    """A compensation attempt ended. RETRY retries up to ``max_retries`` by its own backoff (and not
    before an open breaker admits a trial); ALTERNATIVE falls back to the alternative once the undo
    failed; otherwise the failure is final and recorded (best effort: the rest still compensate)."""
    wid = inst.workflow_id
    if result.ok:
        return [ev.StepCompensated(wid, now, step_id, attempt, via, result.elapsed)]
    will_retry, next_at = False, None
    if result.error_type == STILL_RUNNING_ERROR:
        pass  # an undo that may still run is not started again
    elif comp.type is CompensationType.RETRY and attempt <= comp.max_retries:
        will_retry = True
        next_at = now + max(comp.retry_policy().next_delay(attempt, rng), result.retry_after)
    elif comp.type is CompensationType.ALTERNATIVE and via == "action" and comp.alternative is not None:
        will_retry, next_at = True, now
    message = result.message or result.error_type
    return [ev.CompensationFailed(wid, now, step_id, attempt, message, result.error_type, will_retry, next_at)]


def _preview(inst: WorkflowInstance, events: list[ev.DomainEvent]) -> WorkflowInstance:
    """The instance as it will be after ``events``, without touching ``inst``."""
    copy = WorkflowInstance.from_dict(inst.to_dict())
    for e in events:
        copy.apply(e)
    return copy
