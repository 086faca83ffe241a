"""The seams between saga logic and the outside world."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from engine.domain.policies import ActionRef
from engine.domain.services import HealthStatus


@dataclass(slots=True)
class StepContext:
    """What a step handler (or a service call) receives. A fresh one per call; changing it changes
    nothing in the saga."""

    workflow_id: str
    workflow_type: str
    step_id: str
    attempt: int
    idempotency_key: str
    correlation_id: str
    input: dict[str, Any]
    phase: str = "forward"
    """"forward" for the action, "compensation" for an undo or alternative."""
    output: Any = None
    """In compensation: the output the forward step recorded (None if it never completed)."""
    headers: dict[str, str] = field(default_factory=dict)
    tracing: dict[str, Any] = field(default_factory=dict)
    deadline: float | None = None
    consistency: str = "AT_LEAST_ONCE"
    timeout: float | None = None
    """Seconds this attempt may take (the step or compensation timeout)."""


@dataclass(frozen=True, slots=True)
class Invocation:
    """How one call of a step action or compensation runs: a coroutine on the worker's event loop
    (``async def`` handlers, HTTP services), or a blocking function on a pool thread (plain handlers)."""

    call: Callable[[], Any]
    """Returns the call's output; a coroutine when not ``blocking``."""
    blocking: bool


@dataclass(frozen=True)
class StepResult:
    output: Any = None


@dataclass(frozen=True)
class CompensationResult:
    output: Any = None


class ServiceIntegrationPort(Protocol):
    """The seed's port: every step action and compensation goes through it."""

    def execute_step(self, endpoint: ActionRef, ctx: StepContext) -> StepResult: ...

    def compensate_step(self, endpoint: ActionRef, ctx: StepContext) -> CompensationResult: ...

    def check_health(self, endpoint: ActionRef) -> HealthStatus: ...

    def problems(self, endpoint: ActionRef) -> list[str]:
        """Why this endpoint cannot be called (unknown handler, unconfigured service); empty if fine."""
        ...


class WorkflowExecutionService(Protocol):
    """The seed's WorkflowExecutionService; ``engine.EngineClient`` implements it."""

    def start(self, name: str, input: Any = None, **options: Any) -> dict[str, Any]: ...

    def pause(self, wid: str, *, by: str = "", reason: str = "") -> dict[str, Any]: ...

    def resume(self, wid: str, *, by: str = "") -> dict[str, Any]: ...

    def cancel(self, wid: str, *, by: str = "", reason: str = "cancelled") -> dict[str, Any]: ...

    def status(self, wid: str) -> Any: ...
