"""Starting a workflow: the one use case every start path goes through.

The CLI and API (through :class:`engine.EngineClient`), event and schedule triggers, and the waveless
release all call :meth:`WorkflowStarter.start`, so every start gets the same checks: the input against
the definition's rules, and for STRICT sagas a server that can fsync before each step.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from engine.domain import events as ev
from engine.domain.definition import WorkflowDefinition
from engine.domain.instance import WorkflowInstance
from engine.domain.status import ConsistencyLevel
from engine.errors import ConsistencyUnavailable
from engine.persistence.definition_repository import DefinitionRepository
from engine.persistence.durability import Durability
from engine.persistence.workflow_repository import CreateResult, WorkflowRepository
from engine.stats import StatsRecorder


def new_workflow_id() -> str:
    """Time-ordered, URL- and RQ-safe: 12 hex digits of ms since epoch + 20 random hex digits."""
    return f"{int(time.time() * 1000):012x}{uuid.uuid4().hex[:20]}"


def step_plan(definition: WorkflowDefinition) -> list[dict[str, Any]]:
    """The steps as an instance records them (``WorkflowCreated.plan``)."""
    deps = definition.dependencies()
    return [
        {
            "id": s.id,
            "depends_on": list(deps[s.id]),
            "target": s.action.target,
            "step_type": s.action.kind,
            "compensation_type": s.compensation.type.value if s.compensation else "",
            "idempotent": s.idempotent,
        }
        for s in definition.steps
    ]


class WorkflowStarter:
    def __init__(
        self,
        workflows: WorkflowRepository,
        definitions: DefinitionRepository,
        durability: Durability,
        stats: StatsRecorder,
        request_dispatch: Callable[[], None],
        clock: Callable[[], float] = time.time,
    ):
        self.workflows = workflows
        self.definitions = definitions
        self.durability = durability
        self.stats = stats
        self.request_dispatch = request_dispatch
        self.clock = clock
        self._plans: dict[str, list[dict[str, Any]]] = {}

    def start(
        self,
        definition: WorkflowDefinition | str,
        input: Mapping[str, Any] | None = None,
        *,
        version: int | None = None,
        correlation_id: str | None = None,
        consistency: ConsistencyLevel | str | None = None,
        idempotency_key: str | None = None,
        headers: Mapping[str, str] | None = None,
        principal: str | None = None,
        workflow_id: str | None = None,
        schedule: bool = True,
    ) -> CreateResult:
        """Validate the input, persist the new instance with its WorkflowCreated event and make it
        runnable. ``definition`` is a stored definition or a name (``version``: default the latest
        active one). An idempotency key seen before returns the earlier workflow (``created`` False)."""
        t0 = time.perf_counter()
        if not isinstance(definition, WorkflowDefinition):
            definition = self.definitions.get(definition, version)
        level = ConsistencyLevel(str(consistency).upper()) if consistency else definition.consistency
        if level is ConsistencyLevel.STRICT:
            problem = self.durability.strict_problem()
            if problem:
                raise ConsistencyUnavailable(problem)
        data = definition.prepare_input(input)
        resources = definition.render_resources(data) if level is ConsistencyLevel.STRICT else []
        now = self.clock()
        wid = workflow_id or new_workflow_id()
        created = ev.WorkflowCreated(
            workflow_id=wid,
            at=now,
            workflow_type=definition.name,
            definition_version=int(definition.version or 0),
            consistency=level.value,
            input=data,
            correlation_id=correlation_id or wid,
            deadline=now + definition.timeout,
            plan=self._plan(definition),
            headers=dict(headers or {}),
            security={"principal": principal} if principal else {},
            tracing={"trace_id": uuid.uuid4().hex},
            resources=resources,
        )
        inst = WorkflowInstance.create(created)
        result = self.workflows.create(inst, int(now * 1000), idempotency_key=idempotency_key, schedule=schedule)
        if result.enqueue:
            self.request_dispatch()
        self.stats.observe("workflow_start", time.perf_counter() - t0, (definition.name,))
        if result.created:
            self.stats.incr("workflows_started", (definition.name,))
        return result

    def _plan(self, definition: WorkflowDefinition) -> list[dict[str, Any]]:
        plan = self._plans.get(definition.definition_id)
        if plan is None:
            plan = self._plans[definition.definition_id] = step_plan(definition)
        return plan
