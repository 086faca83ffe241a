"""A saga in the hands of one worker, and the book of leases the worker holds."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from engine.domain import events as ev
from engine.domain.definition import StepDefinition, WorkflowDefinition
from engine.domain.instance import WorkflowInstance
from engine.domain.outcomes import AttemptResult
from engine.domain.status import ConsistencyLevel, WorkflowStatus
from engine.errors import StepError
from engine.persistence.codec import is_json_value
from engine.ports import StepContext
from engine.saga.attempts import Attempt, Outcome


class LeaseBook:
    """Workflows this process holds, for the heartbeat that renews their leases."""

    def __init__(self) -> None:
        self.held: dict[str, int] = {}

    def hold(self, wid: str, fence: int) -> None:
        self.held[wid] = fence

    def drop(self, wid: str) -> None:
        self.held.pop(wid, None)

    def snapshot(self) -> dict[str, int]:
        return dict(self.held)


@dataclass
class SagaExecution:
    """The instance, its definition, and what is not yet committed."""

    inst: WorkflowInstance
    definition: WorkflowDefinition
    fence: int | None
    version: int
    old_status: WorkflowStatus
    buffered: list[ev.DomainEvent] = field(default_factory=list)
    snapshot_version: int = 0
    inflight: dict[str, Attempt] = field(default_factory=dict)
    """Attempts this worker runs right now, by step id."""

    def __post_init__(self) -> None:
        self.steps: dict[str, StepDefinition] = {s.id: s for s in self.definition.steps}

    def step_def(self, sid: str) -> StepDefinition:
        return self.steps[sid]

    @property
    def locked(self) -> bool:
        return self.inst.consistency is ConsistencyLevel.STRICT and bool(self.inst.resources)

    def record(self, event: ev.DomainEvent) -> None:
        self.inst.record(event)
        self.buffered.extend(self.inst.take_pending())

    def record_all(self, events: list[ev.DomainEvent]) -> None:
        for e in events:
            self.record(e)

    def context(self, sid: str, phase: str, key: str, attempt: int, timeout: float) -> StepContext:
        """What the handler or service call receives: a fresh copy, so nothing it changes leaks back."""
        inst = self.inst
        step = inst.step(sid)
        source = step.input if step.input is not None else inst.context.variables
        return StepContext(
            workflow_id=inst.workflow_id,
            workflow_type=inst.workflow_type,
            step_id=sid,
            attempt=attempt,
            idempotency_key=key,
            correlation_id=inst.correlation_id,
            input=_copy(source),
            phase=phase,
            output=_copy(step.output) if phase == "compensation" else None,
            headers=dict(inst.context.headers),
            tracing=dict(inst.context.tracing),
            deadline=inst.deadline,
            consistency=inst.consistency.value,
            timeout=timeout,
        )


def attempt_result(outcome: Outcome, record_output: bool = True) -> AttemptResult:
    """An executor's outcome in the domain's terms: the error classified by type name, its classes,
    its own retryable flag and an open breaker's ``retry_after``. Output to be recorded (a forward
    step's) that is not JSON fails the attempt for good: it could not be stored."""
    if outcome.ok and not record_output:
        return AttemptResult.success(None, outcome.elapsed)
    if outcome.ok:
        output = getattr(outcome.value, "output", outcome.value)
        if is_json_value(output):
            return AttemptResult.success(output, outcome.elapsed)
        error: BaseException | None = StepError("step output is not JSON-serialisable", retryable=False)
    else:
        error = outcome.error
    if error is None:
        return AttemptResult.failure("UnknownError", "unknown error", elapsed=outcome.elapsed)
    return AttemptResult.failure(
        getattr(error, "error_type", None) or type(error).__name__,
        str(error) or type(error).__name__,
        elapsed=outcome.elapsed,
        mro=tuple(c.__name__ for c in type(error).__mro__),
        retryable=bool(getattr(error, "retryable", True)),
        retry_after=float(getattr(error, "retry_after", 0.0) or 0.0),
    )


def _copy(value: Any) -> Any:
    return orjson.loads(orjson.dumps(value))
