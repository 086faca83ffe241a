"""Factories for the pure-domain unit tests: plans, WorkflowCreated events, a saga builder, definitions.

Everything here is deterministic: a fake clock (``T0`` plus explicit ticks), fixed ids, no Redis.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Sequence
from typing import Any

from engine.domain import events as ev
from engine.domain.instance import WorkflowInstance

WID = "wf-1"
T0 = 1_000.0
"""The fake clock's start (seconds)."""
DEFAULT_TIMEOUT = 1_800.0


# ---------------------------------------------------------------------------------------------- plans
def plan_step(
    step_id: str,
    depends_on: Sequence[str] = (),
    *,
    compensation_type: str = "UNDO",
    idempotent: bool = True,
) -> dict[str, Any]:
    """One entry of ``WorkflowCreated.plan`` (dependencies already resolved)."""
    return {
        "id": step_id,
        "depends_on": list(depends_on),
        "target": f"tests.handlers:{step_id}",
        "step_type": "python",
        "compensation_type": compensation_type,
        "idempotent": idempotent,
    }


def sequential_plan(step_ids: Iterable[str]) -> list[dict[str, Any]]:
    """Each step depends on the previous one, as in a definition without ``depends_on``."""
    out, previous = [], None
    for sid in step_ids:
        out.append(plan_step(sid, [previous] if previous else []))
        previous = sid
    return out


def fan_out_plan() -> list[dict[str, Any]]:
    """``a``, then ``b`` and ``c`` in parallel (both depend on ``a``), then ``d`` after both."""
    return [plan_step("a"), plan_step("b", ["a"]), plan_step("c", ["a"]), plan_step("d", ["b", "c"])]


def created_event(
    steps: Sequence[str] | Sequence[dict[str, Any]] = ("a", "b", "c"),
    *,
    deadline: float | None = None,
    at: float = T0,
    workflow_id: str = WID,
    input: dict[str, Any] | None = None,
    consistency: str = "AT_LEAST_ONCE",
) -> ev.WorkflowCreated:
    """A WorkflowCreated event. ``steps`` is a list of step ids (sequential) or of ``plan_step`` dicts."""
    plan = sequential_plan(steps) if steps and isinstance(steps[0], str) else [dict(p) for p in steps]
    return ev.WorkflowCreated(
        workflow_id=workflow_id,
        at=at,
        workflow_type="order-fulfillment",
        definition_version=1,
        consistency=consistency,
        input=dict(input or {"order_id": "o-1"}),
        correlation_id="corr-1",
        deadline=at + DEFAULT_TIMEOUT if deadline is None else deadline,
        plan=plan,
        headers={"x-tenant": "t1"},
        security={"principal": "tester"},
        tracing={"trace_id": "0" * 32},
    )


# ---------------------------------------------------------------------------------------------- builder
class SagaBuilder:
    """Drives one WorkflowInstance through events with a fake clock, keeping every event applied.

    Each method records exactly the event(s) its name says and returns the last one, so a test reads
    like the saga's log. ``events`` is the full stream, for ``WorkflowInstance.replay``.
    """

    def __init__(
        self,
        steps: Sequence[str] | Sequence[dict[str, Any]] = ("a", "b", "c"),
        *,
        timeout: float = DEFAULT_TIMEOUT,
        input: dict[str, Any] | None = None,
    ) -> None:
        self.now = T0
        self.events: list[ev.DomainEvent] = []
        created = created_event(steps, deadline=T0 + timeout, input=input)
        self.inst = WorkflowInstance.create(created)
        self.events.append(created)

    # clock
    def tick(self, seconds: float = 1.0) -> float:
        self.now += seconds
        return self.now

    def record(self, event: ev.DomainEvent) -> ev.DomainEvent:
        self.inst.record(event)
        self.events.append(event)
        return event

    # forward
    def start(self) -> SagaBuilder:
        self.record(ev.WorkflowStarted(WID, self.tick(), "order-fulfillment", "corr-1"))
        return self

    def start_step(self, sid: str, attempt: int = 1, *, recovered: bool = False) -> SagaBuilder:
        self.record(ev.StepStarted(WID, self.tick(), sid, attempt, f"{WID}:{sid}", {"attempt": attempt}, recovered))
        return self

    def finish_step(self, sid: str, attempt: int = 1, output: Any = None) -> SagaBuilder:
        self.record(ev.StepExecuted(WID, self.tick(), sid, attempt, 0.5, output))
        return self

    def run_step(self, sid: str, output: Any = None, attempt: int = 1) -> SagaBuilder:
        return self.start_step(sid, attempt).finish_step(sid, attempt, output)

    def fail_step(
        self,
        sid: str,
        attempt: int = 1,
        *,
        will_retry: bool = False,
        retry_in: float | None = None,
        uncertain: bool = False,
        error_type: str = "StepError",
    ) -> SagaBuilder:
        at = self.tick()
        next_at = at + retry_in if retry_in is not None else None
        self.record(
            ev.StepFailed(WID, at, sid, attempt, f"{sid} broke", error_type, will_retry, next_at, uncertain, 0.5)
        )
        return self

    def pause(self) -> SagaBuilder:
        self.record(ev.WorkflowPaused(WID, self.tick(), "operator", "inspection"))
        return self

    def resume(self) -> SagaBuilder:
        self.record(ev.WorkflowResumed(WID, self.tick(), "operator"))
        return self

    def complete(self) -> SagaBuilder:
        self.record(ev.WorkflowCompleted(WID, self.tick(), self.now - T0, {"ok": True}, {}))
        return self

    def fail(self, sid: str | None = None) -> SagaBuilder:
        self.record(ev.WorkflowFailed(WID, self.tick(), sid, f"step {sid} failed"))
        return self

    def time_out(self) -> SagaBuilder:
        self.record(ev.WorkflowTimeout(WID, self.tick(), self.inst.last_executed_step(), self.now - T0))
        return self

    def cancel(self, reason: str = "cancelled") -> SagaBuilder:
        self.record(ev.WorkflowCancelled(WID, self.tick(), "operator", reason))
        return self

    # backward
    def begin_compensation(self, reason: str = "failed", budget: float = 60.0) -> SagaBuilder:
        at = self.tick()
        stack = self.inst.stack_when_compensating()
        self.record(ev.CompensationStarted(WID, at, reason, list(reversed(stack)), at + budget))
        return self

    def start_compensation_step(self, sid: str, attempt: int = 1) -> SagaBuilder:
        self.record(ev.CompensationStepStarted(WID, self.tick(), sid, attempt, "undo", f"{WID}:{sid}:undo"))
        return self

    def compensate(self, sid: str, attempt: int = 1) -> SagaBuilder:
        self.start_compensation_step(sid, attempt)
        self.record(ev.StepCompensated(WID, self.tick(), sid, attempt, "undo", 0.25))
        return self

    def fail_compensation(
        self, sid: str, attempt: int = 1, *, will_retry: bool = False, retry_in: float | None = None
    ) -> SagaBuilder:
        self.start_compensation_step(sid, attempt)
        at = self.tick()
        next_at = at + retry_in if retry_in is not None else None
        self.record(ev.CompensationFailed(WID, at, sid, attempt, "undo broke", "StepError", will_retry, next_at))
        return self

    def compensate_all(self) -> SagaBuilder:
        """Compensate the stack top-down, each successfully."""
        while self.inst.compensation_stack:
            self.compensate(self.inst.compensation_stack[-1])
        return self

    def finish_compensation(self, reason: str = "failed") -> SagaBuilder:
        failed = list(self.inst.failed_compensations)
        self.record(ev.WorkflowCompensated(WID, self.tick(), reason, bool(failed), failed))
        return self

    def retry_compensation(self, steps: Sequence[str]) -> SagaBuilder:
        self.record(ev.CompensationRetryRequested(WID, self.tick(), list(steps), "operator"))
        return self

    # views
    def snapshot(self) -> dict[str, Any]:
        """A deep copy of ``to_dict()``, immune to later changes of the instance."""
        return copy.deepcopy(self.inst.to_dict())


def json_roundtrip(events: Iterable[ev.DomainEvent]) -> list[ev.DomainEvent]:
    """Events as they come back from storage: to_dict, JSON, event_from_dict."""
    return [ev.event_from_dict(json.loads(json.dumps(e.to_dict()))) for e in events]


# ---------------------------------------------------------------------------------------------- events
def sample_events(workflow_id: str = WID, at: float = T0) -> dict[str, ev.DomainEvent]:
    """One instance of every event class, every field set to a non-default value."""
    samples: list[ev.DomainEvent] = [
        created_event(workflow_id=workflow_id, at=at),
        ev.WorkflowStarted(workflow_id, at, "order-fulfillment", "corr-1"),
        ev.ResourceLockWaiting(workflow_id, at, ["sku:A1", "sku:B2"], "wf-0"),
        ev.StepStarted(workflow_id, at, "a", 2, "wf-1:a", {"qty": 3}, True),
        ev.StepExecuted(workflow_id, at, "a", 2, 0.125, {"reservation": "r-9", "lines": [1, 2]}, "COMPLETED"),
        ev.StepFailed(workflow_id, at, "a", 1, "boom", "StepTimeout", True, at + 2.0, True, 30.0),
        ev.WorkflowPaused(workflow_id, at, "alice", "inspection"),
        ev.WorkflowResumed(workflow_id, at, "alice"),
        ev.WorkflowCancelled(workflow_id, at, "bob", "customer cancelled"),
        ev.WorkflowFailed(workflow_id, at, "b", "step b failed: boom"),
        ev.WorkflowTimeout(workflow_id, at, "a", 1800.5),
        ev.CompensationStarted(workflow_id, at, "failed", ["b", "a"], at + 60.0),
        ev.CompensationStepStarted(workflow_id, at, "b", 1, "alternative", "wf-1:b:undo"),
        ev.StepCompensated(workflow_id, at, "b", 1, "alternative", 0.25),
        ev.CompensationFailed(workflow_id, at, "a", 2, "undo broke", "ConnectionError", True, at + 1.0),
        ev.CompensationParked(workflow_id, at, "c", "call the carrier"),
        ev.CompensationTimeout(workflow_id, at, 130.0, 120.0),
        ev.WorkflowCompensated(workflow_id, at, "failed", True, ["a"]),
        ev.WorkflowCompleted(workflow_id, at, 12.5, {"shipment": "s-1"}, {"steps": 3}),
        ev.CompensationRetryRequested(workflow_id, at, ["a", "c"], "carol"),
    ]
    return {e.TYPE: e for e in samples}


# ---------------------------------------------------------------------------------------------- definitions
def step_dict(step_id: str, **overrides: Any) -> dict[str, Any]:
    """A valid step of a definition dict (handlers are never imported by the pure parser)."""
    step: dict[str, Any] = {
        "id": step_id,
        "action": f"examples.warehouse:{step_id}",
        "compensation": f"examples.warehouse:undo_{step_id}",
    }
    step.update(overrides)
    return step


def definition_dict(**overrides: Any) -> dict[str, Any]:
    """A valid three-step sequential definition dict; keyword arguments replace top-level fields."""
    data: dict[str, Any] = {
        "name": "order-fulfillment",
        "version": 1,
        "steps": [step_dict("reserve"), step_dict("pick"), step_dict("ship")],
    }
    data.update(overrides)
    return data
