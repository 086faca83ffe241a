"""The seed's SagaCoordinator entity: who takes part in a saga, how it compensates, what it promises,
and its saga log (the workflow's events). A read model built from the instance and its definition."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from engine.domain.definition import WorkflowDefinition
from engine.domain.events import DomainEvent
from engine.domain.instance import WorkflowInstance
from engine.domain.status import ConsistencyLevel, StepStatus, WorkflowStatus


class SagaStatus(StrEnum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    COMPENSATING = "COMPENSATING"
    SUCCEEDED = "SUCCEEDED"
    COMPENSATED = "COMPENSATED"
    ABORTED = "ABORTED"


class CompensationStrategy(StrEnum):
    BACKWARD_LIFO_BEST_EFFORT = "BACKWARD_LIFO_BEST_EFFORT"
    """Undo completed steps newest first; a failed undo is recorded and the rest still run."""


_SAGA_STATUS = {
    WorkflowStatus.CREATED: SagaStatus.PENDING,
    WorkflowStatus.RUNNING: SagaStatus.RUNNING,
    WorkflowStatus.PAUSED: SagaStatus.RUNNING,
    WorkflowStatus.FAILED: SagaStatus.COMPENSATING,
    WorkflowStatus.TIMEOUT: SagaStatus.COMPENSATING,
    WorkflowStatus.COMPENSATING: SagaStatus.COMPENSATING,
    WorkflowStatus.COMPENSATED: SagaStatus.COMPENSATED,
    WorkflowStatus.COMPLETED: SagaStatus.SUCCEEDED,
    WorkflowStatus.CANCELLED: SagaStatus.ABORTED,
}


@dataclass(frozen=True)
class SagaParticipant:
    step_id: str
    service: str
    compensation_type: str
    compensation_target: str | None
    status: StepStatus


@dataclass(frozen=True)
class SagaCoordinator:
    saga_id: str
    saga_type: str
    status: SagaStatus
    participants: tuple[SagaParticipant, ...]
    compensation_strategy: CompensationStrategy
    consistency_level: ConsistencyLevel
    saga_log: tuple[DomainEvent, ...] = field(default_factory=tuple)

    @classmethod
    def of(
        cls, inst: WorkflowInstance, definition: WorkflowDefinition, log: tuple[DomainEvent, ...] = ()
    ) -> SagaCoordinator:
        participants = []
        for step in definition.steps:
            comp = step.compensation
            target = None
            if comp is not None:
                ref = comp.action or comp.alternative
                target = ref.target if ref else None
            participants.append(
                SagaParticipant(
                    step_id=step.id,
                    service=step.action.target,
                    compensation_type=comp.type.value if comp else "",
                    compensation_target=target,
                    status=inst.step(step.id).status,
                )
            )
        return cls(
            saga_id=inst.workflow_id,
            saga_type=inst.workflow_type,
            status=_SAGA_STATUS[inst.status],
            participants=tuple(participants),
            compensation_strategy=CompensationStrategy.BACKWARD_LIFO_BEST_EFFORT,
            consistency_level=inst.consistency,
            saga_log=log,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "saga_id": self.saga_id,
            "saga_type": self.saga_type,
            "status": self.status.value,
            "participants": [
                {
                    "step_id": p.step_id,
                    "service": p.service,
                    "compensation_type": p.compensation_type,
                    "compensation_target": p.compensation_target,
                    "status": p.status.value,
                }
                for p in self.participants
            ],
            "compensation_strategy": self.compensation_strategy.value,
            "consistency_level": self.consistency_level.value,
            "saga_log": [e.to_dict() for e in self.saga_log],
        }
