"""Operator commands: pause, resume, cancel and retry a saga's failed compensations.

Each is a pure function of the instance, the clock value and who asks, returning the events to record,
or raising :class:`IllegalTransition` with the reason it is refused (a control on a finished saga is
refused, never silently ignored). The saga layer loads the instance, calls one of these and commits.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from engine.domain import events as ev
from engine.domain.instance import WorkflowInstance
from engine.domain.outcomes import begin_compensation
from engine.domain.policies import MIN_COMPENSATION_BUDGET, compensation_budget
from engine.domain.status import WorkflowStatus
from engine.errors import IllegalTransition

Command = Callable[[WorkflowInstance, float], list[ev.DomainEvent]]
"""A command bound to its arguments: ``(instance, now) -> events``."""


def pause(inst: WorkflowInstance, now: float, by: str = "", reason: str = "") -> list[ev.DomainEvent]:
    """The step in flight finishes; no new step starts until resumed."""
    if inst.status is not WorkflowStatus.RUNNING:
        raise IllegalTransition(inst.status.value, "PAUSED", "only a RUNNING workflow can be paused")
    return [ev.WorkflowPaused(inst.workflow_id, now, by, reason)]


def resume(inst: WorkflowInstance, now: float, by: str = "") -> list[ev.DomainEvent]:
    if inst.status is not WorkflowStatus.PAUSED:
        raise IllegalTransition(inst.status.value, "RUNNING", "only a PAUSED workflow can be resumed")
    return [ev.WorkflowResumed(inst.workflow_id, now, by)]


def cancel(
    inst: WorkflowInstance,
    now: float,
    by: str = "",
    reason: str = "cancelled",
    floor: float = MIN_COMPENSATION_BUDGET,
) -> list[ev.DomainEvent]:
    """CREATED ends CANCELLED at once; RUNNING or PAUSED compensates what completed (reason ``cancelled``)."""
    if inst.status is WorkflowStatus.CREATED:
        return [ev.WorkflowCancelled(inst.workflow_id, now, by, reason)]
    if inst.status not in (WorkflowStatus.RUNNING, WorkflowStatus.PAUSED):
        raise IllegalTransition(
            inst.status.value, "CANCELLED", "only CREATED, RUNNING or PAUSED workflows can be cancelled"
        )
    return [ev.WorkflowCancelled(inst.workflow_id, now, by, reason), *begin_compensation(inst, now, reason, floor)]


def retry_compensation(
    inst: WorkflowInstance,
    now: float,
    steps: Iterable[str] | None = None,
    by: str = "",
    floor: float = MIN_COMPENSATION_BUDGET,
) -> list[ev.DomainEvent]:
    """Run failed or parked compensations again (all of them unless ``steps`` names some)."""
    if inst.status is not WorkflowStatus.COMPENSATED:
        raise IllegalTransition(inst.status.value, "COMPENSATING", "only a COMPENSATED workflow retries compensations")
    chosen = list(dict.fromkeys(steps)) if steps else list(inst.failed_compensations)
    missing = [s for s in chosen if s not in inst.failed_compensations]
    if not chosen or missing:
        raise IllegalTransition(
            inst.status.value, "COMPENSATING", f"no failed compensation for {missing or 'any step'}"
        )
    deadline = now + compensation_budget(inst.forward_time or 0.0, floor)
    return [ev.CompensationRetryRequested(inst.workflow_id, now, chosen, by, deadline)]
