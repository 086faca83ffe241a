"""Every error the engine raises, under one base.

::

    EngineError
      + DefinitionError             an invalid definition (carries every problem found)
      + InputValidationError        a start's input does not satisfy the definition's rules
      + NotFound                    unknown workflow or definition
      |   - WorkflowNotFound
      |   - DefinitionNotFound
      + IllegalTransition           a state change the state machine does not allow (409)
      + ConcurrencyConflict         optimistic concurrency lost after retries
      + LeaseLost                   this worker no longer owns the workflow (fenced out)
      + ConsistencyUnavailable      the Redis server cannot give the requested consistency
      + ConfigurationError          the engine cannot reach or set up what it needs
      + StepError                   raised by step handlers; retryability is data on the error
          - NonRetryableStepError
          - StepTimeout
          - AttemptStillRunning

Retryability is data (``StepError.retryable``), not a branch of the tree, so a handler can say
"this one is final" for any error type.
"""

from __future__ import annotations


class EngineError(Exception):
    """Base of every engine error."""


class DefinitionError(EngineError):
    """A workflow definition is invalid. ``problems`` lists every problem found, each precise."""

    def __init__(self, problems: list[str] | str, name: str | None = None):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        self.name = name
        where = f"definition {name!r}: " if name else ""
        super().__init__(where + "; ".join(self.problems))


class InputValidationError(EngineError):
    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("invalid input: " + "; ".join(problems))


class NotFound(EngineError):
    pass


class WorkflowNotFound(NotFound):
    def __init__(self, workflow_id: str):
        self.workflow_id = workflow_id
        super().__init__(f"no workflow with id {workflow_id!r}")


class DefinitionNotFound(NotFound):
    def __init__(self, name: str, version: int | None = None):
        self.name, self.version = name, version
        what = f"{name!r} version {version}" if version is not None else f"{name!r} (no active version)"
        super().__init__(f"no workflow definition {what}")


class IllegalTransition(EngineError):
    def __init__(self, current: str, target: str, detail: str = ""):
        self.current, self.target = current, target
        msg = f"illegal transition {current} -> {target}"
        super().__init__(f"{msg}: {detail}" if detail else msg)


class ConcurrencyConflict(EngineError):
    pass


class LeaseLost(EngineError):
    pass


class ConsistencyUnavailable(EngineError):
    pass


class ConfigurationError(EngineError):
    pass


class StepError(EngineError):
    """Raised by a step handler. ``retryable=False`` stops retries and starts compensation."""

    retryable: bool = True

    def __init__(self, message: str = "", *, retryable: bool | None = None, error_type: str | None = None):
        super().__init__(message)
        if retryable is not None:
            self.retryable = retryable
        self.error_type = error_type or type(self).__name__


class NonRetryableStepError(StepError):
    retryable = False


class StepTimeout(StepError):
    """The attempt ran past its step timeout. Retryable: the outcome is unknown, not failed."""


class AttemptStillRunning(StepError):
    """A blocking handler ran past its timeout and the grace after it, and could not be stopped: it
    may still act. Final: neither retried nor compensated while it may run (its compensation is parked
    for an operator), so the saga ends requiring attention instead of claiming a clean undo."""

    retryable = False
