"""Decide purely what a saga does next; the runner acts on the decision.

``decide(instance, now, inflight)`` looks only at the instance, the clock value and which steps
this runner is executing right now. Steps recorded RUNNING that this runner is not executing were
interrupted (a worker died or lost its lease): they are recovered.
"""

from __future__ import annotations

from collections.abc import Collection
from enum import StrEnum
from typing import NamedTuple

from engine.domain.instance import WorkflowInstance
from engine.domain.status import StepStatus, WorkflowStatus


class Action(StrEnum):
    START = "start"
    RUN = "run"
    RECOVER = "recover"
    WAIT_INFLIGHT = "wait_inflight"
    WAIT = "wait"
    COMPLETE = "complete"
    FAIL = "fail"
    TIMEOUT = "timeout"
    BEGIN_COMPENSATION = "begin_compensation"
    COMPENSATE = "compensate"
    COMPENSATION_TIMEOUT = "compensation_timeout"
    FINISH_COMPENSATION = "finish_compensation"
    DONE = "done"


class Decision(NamedTuple):
    action: Action
    steps: tuple[str, ...] = ()
    until: float | None = None
    reason: str = ""


def decide(inst: WorkflowInstance, now: float, inflight: Collection[str] = ()) -> Decision:
    status = inst.status
    if inst.is_terminal:
        return Decision(Action.DONE)
    if status is WorkflowStatus.CREATED:
        if now >= inst.deadline:
            # Never started before its deadline: start, so that it times out through RUNNING.
            return Decision(Action.START, reason="deadline passed before start")
        return Decision(Action.START)
    if status in (WorkflowStatus.FAILED, WorkflowStatus.TIMEOUT):
        return Decision(Action.BEGIN_COMPENSATION, reason=inst.reason or status.value.lower())
    if status is WorkflowStatus.COMPENSATING:
        return _decide_backward(inst, now, inflight)
    # RUNNING or PAUSED: the forward phase.
    if now >= inst.deadline:
        if inflight:
            return Decision(Action.TIMEOUT, steps=tuple(inflight))
        return Decision(Action.TIMEOUT)
    if status is WorkflowStatus.PAUSED:
        # No new step starts while paused, not even a recovery or a compensation; the deadline still runs.
        if inflight:
            return Decision(Action.WAIT_INFLIGHT, until=inst.deadline, reason="paused; in-flight steps finish")
        return Decision(Action.WAIT, until=inst.deadline, reason="paused")
    # One pass over the steps (this runs before every step).
    interrupted: list[str] = []
    failed: list[str] = []
    ready: list[str] = []
    next_retry: float | None = None
    completed = 0
    done = StepStatus.COMPLETED
    status_of = {s.step_id: s.status for s in inst.steps}
    for s in inst.steps:
        st = s.status
        if st is done:
            completed += 1
        elif st is StepStatus.PENDING:
            for d in s.depends_on:
                if status_of[d] is not done:
                    break
            else:
                ready.append(s.step_id)
        elif st is StepStatus.RUNNING:
            if s.step_id not in inflight:
                interrupted.append(s.step_id)
        elif st is StepStatus.WAITING_RETRY:
            due = s.next_attempt_at or 0.0
            if due <= now:
                ready.append(s.step_id)
            else:
                next_retry = due if next_retry is None else min(next_retry, due)
        elif st is StepStatus.FAILED:
            failed.append(s.step_id)
    if interrupted:
        return Decision(Action.RECOVER, steps=tuple(interrupted))
    if failed:
        if inflight:
            return Decision(Action.WAIT_INFLIGHT, until=inst.deadline, reason="failed; waiting for in-flight steps")
        step = inst.step(failed[0])
        reason = f"step {step.step_id} failed: {(step.error or {}).get('message', '')}"
        return Decision(Action.FAIL, steps=(failed[0],), reason=reason)
    if ready:
        return Decision(Action.RUN, steps=tuple(ready))
    if inflight:
        return Decision(Action.WAIT_INFLIGHT, until=_min(next_retry, inst.deadline))
    if completed == len(inst.steps):
        return Decision(Action.COMPLETE)
    if next_retry is not None:
        return Decision(Action.WAIT, until=min(next_retry, inst.deadline), reason="retry backoff")
    # Nothing runnable, nothing in flight, not complete: a dependency can never finish.
    blocked = [s.step_id for s in inst.steps if s.status is StepStatus.PENDING]
    return Decision(Action.FAIL, steps=tuple(blocked[:1]), reason=f"steps can never run: {blocked}")


def _decide_backward(inst: WorkflowInstance, now: float, inflight: Collection[str]) -> Decision:
    # Forward steps still executing (a cancel arrived mid-step) finish first: their effect must be
    # known before the LIFO order is fixed.
    if inflight:
        return Decision(Action.WAIT_INFLIGHT, until=None, reason="compensating; in-flight steps finish first")
    interrupted = [s.step_id for s in inst.steps if s.status is StepStatus.RUNNING]
    if interrupted:
        return Decision(Action.RECOVER, steps=tuple(interrupted))
    # Checked before finishing too: a compensation that overran its budget in its last step did
    # not finish within it either.
    if inst.compensation_deadline is not None and now > inst.compensation_deadline and not inst.compensation_timed_out:
        return Decision(Action.COMPENSATION_TIMEOUT)
    if not inst.compensation_stack:
        return Decision(Action.FINISH_COMPENSATION)
    top = inst.step(inst.compensation_stack[-1])
    if top.comp_next_attempt_at is not None and top.comp_next_attempt_at > now and not top.comp_running:
        until = top.comp_next_attempt_at
        if inst.compensation_deadline is not None and not inst.compensation_timed_out:
            until = min(until, inst.compensation_deadline + 0.001)
        return Decision(Action.WAIT, until=until, reason="compensation retry backoff")
    return Decision(Action.COMPENSATE, steps=(top.step_id,))


def _min(a: float | None, b: float) -> float:
    return b if a is None else min(a, b)
