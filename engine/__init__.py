"""WES Orchestration Engine: saga orchestration for warehouse execution systems.

The public surface; everything else is internal. The control API and the dashboard import only these
names: the client and its domain types, the API's stores (``ApiStores``: keys, audit, rate limits,
the live feed), the storage errors, the waveless operator facade and the metrics catalogue.
"""

from engine.client import EngineClient
from engine.domain.definition import StepDefinition, ValidationRules, WorkflowDefinition, WorkflowTrigger
from engine.domain.events import event_types
from engine.domain.policies import ActionRef, CompensationAction, RetryPolicy
from engine.domain.status import (
    BackoffStrategy,
    CompensationType,
    ConsistencyLevel,
    StepStatus,
    WorkflowStatus,
)
from engine.domain.waveless import ProcessingStrategy
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
from engine.metrics import (
    BAR_QUANTILE,
    BREAKER_TRIPS,
    COUNTERS,
    HISTOGRAMS,
    LATENCY_INDICATORS,
    SERVICE_CALLS,
    SLA_TARGETS,
    build_registry,
)
from engine.persistence.api_stores import ApiKeyStore, ApiStores, AuditStore, RateLimitStore
from engine.persistence.errors import StoreError, StoreUnavailable
from engine.persistence.event_stream import EventFeed, StreamEntry
from engine.ports import StepContext
from engine.saga.waveless import WavelessProcessingService
from engine.settings import EngineSettings
from engine.stats import LogHistogram, merge_all

__all__ = [
    "BAR_QUANTILE",
    "BREAKER_TRIPS",
    "COUNTERS",
    "HISTOGRAMS",
    "LATENCY_INDICATORS",
    "SERVICE_CALLS",
    "SLA_TARGETS",
    "ActionRef",
    "ApiKeyStore",
    "ApiStores",
    "AuditStore",
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
    "EventFeed",
    "IllegalTransition",
    "InputValidationError",
    "LogHistogram",
    "NonRetryableStepError",
    "NotFound",
    "ProcessingStrategy",
    "RateLimitStore",
    "RetryPolicy",
    "StepContext",
    "StepDefinition",
    "StepError",
    "StepStatus",
    "StepTimeout",
    "StoreError",
    "StoreUnavailable",
    "StreamEntry",
    "ValidationRules",
    "WavelessProcessingService",
    "WorkflowDefinition",
    "WorkflowNotFound",
    "WorkflowStatus",
    "WorkflowTrigger",
    "build_registry",
    "event_types",
    "merge_all",
]
