"""The ServiceIntegrationPort the engine uses: Python handlers and HTTP services behind one door."""

from __future__ import annotations

from engine.domain.policies import ActionRef
from engine.integration.python_handlers import PythonHandlerPort
from engine.ports import CompensationResult, HealthStatus, ServiceIntegrationPort, StepContext, StepResult


class IntegrationPort:
    def __init__(self, python: PythonHandlerPort, http: ServiceIntegrationPort):
        self.python = python
        self.http = http

    def _for(self, endpoint: ActionRef) -> ServiceIntegrationPort:
        return self.python if endpoint.handler else self.http

    def execute_step(self, endpoint: ActionRef, ctx: StepContext) -> StepResult:
        return self._for(endpoint).execute_step(endpoint, ctx)

    def compensate_step(self, endpoint: ActionRef, ctx: StepContext) -> CompensationResult:
        return self._for(endpoint).compensate_step(endpoint, ctx)

    def check_health(self, endpoint: ActionRef) -> HealthStatus:
        return self._for(endpoint).check_health(endpoint)

    def problems(self, endpoint: ActionRef) -> list[str]:
        return self._for(endpoint).problems(endpoint)
