"""ServiceIntegrationPort over Python handlers named ``module:function``.

A handler takes a :class:`engine.ports.StepContext` and returns a JSON-serialisable value (a dict
output is merged into the workflow's variables). It may be ``async def`` (awaited on the worker's event
loop, cancelled when its attempt is stopped) or a plain function (run on a pool thread). Raising fails the attempt; raise
``engine.errors.StepError(..., retryable=False)`` to stop retries.
"""

from __future__ import annotations

import importlib
import inspect
import threading
from collections.abc import Callable
from typing import Any

from engine.domain.policies import ActionRef
from engine.errors import ConfigurationError
from engine.ports import CompensationResult, HealthStatus, Invocation, StepContext, StepResult

Handler = Callable[[StepContext], Any]


class HandlerResolver:
    """Imports ``module:function`` references once and caches them (seed: cache compensation actions)."""

    def __init__(self) -> None:
        self._cache: dict[str, Callable] = {}
        self._async: dict[str, bool] = {}
        self._lock = threading.Lock()

    def resolve(self, ref: str) -> Callable:
        fn = self._cache.get(ref)
        if fn is not None:
            return fn
        with self._lock:
            fn = self._cache.get(ref)
            if fn is None:
                fn = _import(ref)
                self._cache[ref] = fn
        return fn

    def is_async(self, ref: str) -> bool:
        """Whether the handler is a coroutine function (``async def``), found once per handler."""
        found = self._async.get(ref)
        if found is None:
            found = self._async[ref] = inspect.iscoroutinefunction(self.resolve(ref))
        return found

    def problem(self, ref: str) -> str | None:
        try:
            self.resolve(ref)
        except ConfigurationError as exc:
            return str(exc)
        return None


def _import(ref: str) -> Callable:
    module_name, _, attr_path = ref.partition(":")
    if not module_name or not attr_path:
        raise ConfigurationError(f"handler {ref!r} is not of the form 'module:function'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigurationError(f"unknown handler {ref!r}: cannot import module {module_name!r} ({exc})")
    obj: Any = module
    for part in attr_path.split("."):
        if not hasattr(obj, part):
            raise ConfigurationError(f"unknown handler {ref!r}: module {module_name!r} has no attribute {attr_path!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise ConfigurationError(f"handler {ref!r} is not callable")
    return obj


class PythonHandlerPort:
    def __init__(self, resolver: HandlerResolver | None = None):
        self.resolver = resolver or HandlerResolver()

    def execute_step(self, endpoint: ActionRef, ctx: StepContext) -> StepResult:
        return StepResult(self._call(endpoint, ctx))

    def compensate_step(self, endpoint: ActionRef, ctx: StepContext) -> CompensationResult:
        return CompensationResult(self._call(endpoint, ctx))

    def invocation(self, endpoint: ActionRef, ctx: StepContext) -> Invocation:
        """An ``async def`` handler is awaited on the worker's event loop; a plain one blocks a pool thread."""
        if endpoint.handler is None:
            raise ConfigurationError(f"no service endpoint named {endpoint.service!r} is configured")
        fn = self.resolver.resolve(endpoint.handler)
        return Invocation(lambda: fn(ctx), blocking=not self.resolver.is_async(endpoint.handler))

    def check_health(self, endpoint: ActionRef) -> HealthStatus:
        return HealthStatus.HEALTHY if not self.problems(endpoint) else HealthStatus.UNHEALTHY

    def problems(self, endpoint: ActionRef) -> list[str]:
        if endpoint.handler is None:
            return [f"no service endpoint named {endpoint.service!r} is configured"]
        problem = self.resolver.problem(endpoint.handler)
        return [problem] if problem else []

    def _call(self, endpoint: ActionRef, ctx: StepContext) -> Any:
        if endpoint.handler is None:
            raise ConfigurationError(f"no service endpoint named {endpoint.service!r} is configured")
        return self.resolver.resolve(endpoint.handler)(ctx)
