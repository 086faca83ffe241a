"""WES Orchestration Engine: saga orchestration for warehouse execution systems.

The public surface; everything else is internal.
"""

from engine.client import EngineClient
from engine.domain.definition import StepDefinition, ValidationRules, WorkflowDefinition, WorkflowTrigger
from engine.domain.policies import ActionRef, CompensationAction, RetryPolicy
from engine.domain.status import (
    BackoffStrategy,
    CompensationType,
    ConsistencyLevel,
    StepStatus,
    WorkflowStatus,
)
from engine.errors import (
    ConcurrencyConflict,
    ConfigurationError,
    ConsistencyUnavailable,
    DefinitionError,
    DefinitionNotFound,
    EngineError,
    IllegalTransition,
    InputValidationError,
    NonRetryableStepError,
    NotFound,
    StepError,
    StepTimeout,
    WorkflowNotFound,
)
from engine.ports import StepContext
from engine.settings import EngineSettings

__all__ = [
    "ActionRef",
    "BackoffStrategy",
    "CompensationAction",
    "CompensationType",
    "ConcurrencyConflict",
    "ConfigurationError",
    "ConsistencyLevel",
    "ConsistencyUnavailable",
    "DefinitionError",
    "DefinitionNotFound",
    "EngineClient",
    "EngineError",
    "EngineSettings",
    "IllegalTransition",
    "InputValidationError",
    "NonRetryableStepError",
    "NotFound",
    "RetryPolicy",
    "StepContext",
    "StepDefinition",
    "StepError",
    "StepStatus",
    "StepTimeout",
    "ValidationRules",
    "WorkflowDefinition",
    "WorkflowNotFound",
    "WorkflowStatus",
    "WorkflowTrigger",
]
