"""The ServiceIntegrationPort the engine uses: Python handlers and HTTP services behind one door.

Workers ask for an :class:`~engine.ports.Invocation` and run it themselves (on their event loop, or on a
pool thread for a blocking handler); the synchronous ``execute_step``/``compensate_step`` serve tools."""

from __future__ import annotations

from engine.domain.policies import ActionRef
from engine.integration.http_service import HttpServicePort
from engine.integration.python_handlers import PythonHandlerPort
from engine.ports import CompensationResult, HealthStatus, Invocation, ServiceIntegrationPort, StepContext, StepResult


class IntegrationPort:
    def __init__(self, python: PythonHandlerPort, http: HttpServicePort):
        self.python = python
        self.http = http

    def _for(self, endpoint: ActionRef) -> ServiceIntegrationPort:
        return self.python if endpoint.handler else self.http

    def execute_step(self, endpoint: ActionRef, ctx: StepContext) -> StepResult:
        return self._for(endpoint).execute_step(endpoint, ctx)

    def compensate_step(self, endpoint: ActionRef, ctx: StepContext) -> CompensationResult:
        return self._for(endpoint).compensate_step(endpoint, ctx)

    def invocation(self, endpoint: ActionRef, ctx: StepContext) -> Invocation:
        """How a worker runs this call (a step action or a compensation: ``ctx.phase`` says which)."""
        if endpoint.handler:
            return self.python.invocation(endpoint, ctx)
        return Invocation(lambda: self.http.call_async(endpoint, ctx), blocking=False)

    def check_health(self, endpoint: ActionRef) -> HealthStatus:
        return self._for(endpoint).check_health(endpoint)

    def problems(self, endpoint: ActionRef) -> list[str]:
        return self._for(endpoint).problems(endpoint)
