"""Validated policy value objects with the seed's defaults, and the backoff arithmetic."""

from __future__ import annotations

import math
import random
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from engine.domain.status import BackoffStrategy, CompensationType

DEFAULT_WORKFLOW_TIMEOUT = 30 * 60.0
"""Business rule 1: 30 minutes per workflow."""
DEFAULT_STEP_TIMEOUT = 30.0
"""PRODUCT.md: a step attempt fails after 30 s."""
COMPENSATION_BUDGET_FACTOR = 2.0
"""Business rule 3: compensation must complete within 2x the forward time."""
MIN_COMPENSATION_BUDGET = 1.0
"""Floor of that budget, so a saga failing in its first milliseconds is not flagged for any undo. The
engine raises it to cover a recovery (``EngineSettings.compensation_floor``)."""


def compensation_budget(forward_time: float, floor: float = MIN_COMPENSATION_BUDGET) -> float:
    """Business rule 3: twice the forward time, and never less than ``floor``."""
    return max(COMPENSATION_BUDGET_FACTOR * max(forward_time, 0.0), floor)


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_duration(value: Any, where: str, *, allow_zero: bool = True) -> float:
    """Seconds from a number or a string like ``250ms``, ``30s``, ``5m``, ``1h``."""
    if isinstance(value, bool):
        raise ValueError(f"{where}: bad duration {value!r} (use seconds like 30, or 250ms, 30s, 5m, 1h)")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (m := _DURATION.match(value)):
        seconds = float(m.group(1)) * _UNITS[m.group(2)]
    else:
        raise ValueError(f"{where}: bad duration {value!r} (use seconds like 30, or 250ms, 30s, 5m, 1h)")
    if not math.isfinite(seconds) or seconds < 0 or (seconds == 0 and not allow_zero):
        raise ValueError(f"{where}: duration must be {'>= 0' if allow_zero else '> 0'}, got {value!r}")
    return seconds


def _fib(n: int) -> int:
    a, b = 1, 1
    for _ in range(n - 1):
        a, b = b, a + b
    return a


CustomBackoff = Callable[[int, float, float], float]
"""A registered CUSTOM backoff: ``fn(retry_number, initial_delay, max_delay) -> seconds``."""


@dataclass(frozen=True)
class RetryPolicy:
    """Forward recovery of one step (seed: 3 attempts with exponential backoff).

    The delay before retry ``k`` (``k = 1`` for the first retry) is:

    - LINEAR: ``initial + increment * (k - 1)`` (the seed's fixed delay when ``increment`` is 0)
    - EXPONENTIAL: ``initial * 2 ** (k - 1)``
    - FIBONACCI: ``initial * fib(k)`` with fib = 1, 1, 2, 3, 5, ...
    - CUSTOM: the registered function ``custom`` (``module:function``)

    capped at ``max_delay``, then ``jitter`` adds up to that fraction of the delay at random.
    """

    max_attempts: int = 3
    backoff: BackoffStrategy = BackoffStrategy.EXPONENTIAL
    initial_delay: float = 1.0
    max_delay: float = 60.0
    increment: float = 0.0
    jitter: float = 0.0
    retryable_errors: tuple[str, ...] = ()
    """Error type names that may be retried; empty means every error not declared non-retryable."""
    non_retryable_errors: tuple[str, ...] = ()
    custom: str | None = None

    def validate(self, where: str) -> list[str]:
        problems = []
        if self.max_attempts < 1:
            problems.append(f"{where}.max_attempts must be >= 1, got {self.max_attempts}")
        if self.max_delay < self.initial_delay:
            problems.append(f"{where}.max_delay ({self.max_delay}s) is below initial_delay ({self.initial_delay}s)")
        if not 0.0 <= self.jitter <= 1.0:
            problems.append(f"{where}.jitter must be between 0 and 1, got {self.jitter}")
        if self.backoff is BackoffStrategy.CUSTOM and not self.custom:
            problems.append(f"{where}: backoff CUSTOM needs 'custom: module:function'")
        return problems

    def base_delay(self, retry_number: int, custom_fn: CustomBackoff | None = None) -> float:
        k = max(1, retry_number)
        if self.backoff is BackoffStrategy.LINEAR:
            delay = self.initial_delay + self.increment * (k - 1)
        elif self.backoff is BackoffStrategy.EXPONENTIAL:
            # Past 2**1000 any positive delay is above any cap; the product may be inf, never an error.
            delay = self.initial_delay * (2.0 ** min(k - 1, 1000))
        elif self.backoff is BackoffStrategy.FIBONACCI:
            delay = self.initial_delay * float(_fib(min(k, 1400)))
        else:
            if custom_fn is None:
                raise ValueError("CUSTOM backoff needs its registered function")
            delay = float(custom_fn(k, self.initial_delay, self.max_delay))
        return max(0.0, min(delay, self.max_delay))

    def next_delay(
        self, retry_number: int, rng: random.Random | None = None, custom_fn: CustomBackoff | None = None
    ) -> float:
        delay = self.base_delay(retry_number, custom_fn)
        if self.jitter and delay > 0:
            delay += (rng or random).uniform(0.0, self.jitter * delay)
        return delay

    def is_retryable(self, error_type: str, error_mro: tuple[str, ...], flagged_retryable: bool) -> bool:
        names = {error_type, *error_mro}
        if not flagged_retryable or names & set(self.non_retryable_errors):
            return False
        if self.retryable_errors:
            return bool(names & set(self.retryable_errors))
        return True

    def to_dict(self) -> dict[str, Any]:
        return {
            "max_attempts": self.max_attempts,
            "backoff": self.backoff.value,
            "initial_delay": self.initial_delay,
            "max_delay": self.max_delay,
            "increment": self.increment,
            "jitter": self.jitter,
            "retryable_errors": list(self.retryable_errors),
            "non_retryable_errors": list(self.non_retryable_errors),
            "custom": self.custom,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None, where: str, base: RetryPolicy | None = None) -> RetryPolicy:
        base = base or cls()
        if data is None:
            return base
        if not isinstance(data, Mapping):
            raise ValueError(f"{where}: expected a mapping, got {type(data).__name__}")
        unknown = set(data) - {*cls.__dataclass_fields__, "backoff_strategy"}
        if unknown:
            raise ValueError(f"{where}: unknown field(s) {sorted(unknown)}")
        backoff_raw = data.get("backoff", data.get("backoff_strategy", base.backoff.value))
        try:
            backoff = BackoffStrategy(str(backoff_raw).upper())
        except ValueError:
            raise ValueError(f"{where}.backoff: {backoff_raw!r} is not one of LINEAR, EXPONENTIAL, FIBONACCI, CUSTOM")
        max_attempts = data.get("max_attempts", base.max_attempts)
        if not isinstance(max_attempts, int) or isinstance(max_attempts, bool):
            raise ValueError(f"{where}.max_attempts: expected an integer, got {max_attempts!r}")
        jitter = data.get("jitter", base.jitter)
        if not isinstance(jitter, int | float) or isinstance(jitter, bool):
            raise ValueError(f"{where}.jitter: expected a number between 0 and 1, got {jitter!r}")
        return cls(
            max_attempts=max_attempts,
            backoff=backoff,
            initial_delay=parse_duration(data.get("initial_delay", base.initial_delay), f"{where}.initial_delay"),
            max_delay=parse_duration(data.get("max_delay", base.max_delay), f"{where}.max_delay"),
            increment=parse_duration(data.get("increment", base.increment), f"{where}.increment"),
            jitter=float(jitter),
            retryable_errors=tuple(_names(data.get("retryable_errors", base.retryable_errors), where)),
            non_retryable_errors=tuple(_names(data.get("non_retryable_errors", base.non_retryable_errors), where)),
            custom=data.get("custom", base.custom),
        )


def _names(value: Any, where: str) -> list[str]:
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{where}: error names must be a list of strings")
    return list(value)


@dataclass(frozen=True)
class ActionRef:
    """What a step or compensation calls: a Python handler ``module:function`` (or later a service)."""

    handler: str | None = None
    service: str | None = None
    operation: str | None = None

    @property
    def target(self) -> str:
        if self.handler:
            return self.handler
        return f"{self.service}.{self.operation}"

    @property
    def kind(self) -> str:
        return "python" if self.handler else "service"

    def to_dict(self) -> dict[str, Any]:
        if self.handler:
            return {"handler": self.handler}
        return {"service": self.service, "operation": self.operation}

    @classmethod
    def parse(cls, value: Any, where: str) -> ActionRef:
        if isinstance(value, str):
            value = {"handler": value}
        if not isinstance(value, Mapping):
            raise ValueError(f"{where}: expected 'module:function' or a mapping, got {value!r}")
        handler = value.get("handler")
        if handler is not None:
            if not isinstance(handler, str) or not re.fullmatch(r"[\w.]+:[\w.]+", handler):
                raise ValueError(f"{where}.handler: {handler!r} is not of the form 'module:function'")
            return cls(handler=handler)
        service, operation = value.get("service"), value.get("operation")
        if isinstance(service, str) and isinstance(operation, str) and service and operation:
            return cls(service=service, operation=operation)
        raise ValueError(f"{where}: needs 'handler: module:function' (or 'service' and 'operation')")


@dataclass(frozen=True)
class CompensationAction:
    """How a completed step is undone (seed's CompensationAction)."""

    type: CompensationType = CompensationType.UNDO
    action: ActionRef | None = None
    alternative: ActionRef | None = None
    max_retries: int = 3
    timeout: float | None = None
    retry_delay: float = 1.0
    note: str = ""

    def retry_policy(self) -> RetryPolicy:
        """Backoff of a RETRY compensation: exponential from ``retry_delay``, capped at a minute (or at
        ``retry_delay`` when that is longer); the attempts are bounded by ``max_retries``."""
        return RetryPolicy(
            max_attempts=self.max_retries + 1,
            backoff=BackoffStrategy.EXPONENTIAL,
            initial_delay=self.retry_delay,
            max_delay=max(self.retry_delay, 60.0),
        )

    def validate(self, where: str) -> list[str]:
        problems = []
        if self.type in (CompensationType.UNDO, CompensationType.RETRY) and self.action is None:
            problems.append(f"{where}: compensation type {self.type.value} needs an 'action' (undo handler)")
        if self.type is CompensationType.ALTERNATIVE and self.alternative is None:
            problems.append(f"{where}: compensation type ALTERNATIVE needs an 'alternative' handler")
        if self.max_retries < 0:
            problems.append(f"{where}.max_retries must be >= 0")
        return problems

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.type.value,
            "action": self.action.to_dict() if self.action else None,
            "alternative": self.alternative.to_dict() if self.alternative else None,
            "max_retries": self.max_retries,
            "timeout": self.timeout,
            "retry_delay": self.retry_delay,
            "note": self.note,
        }

    @classmethod
    def parse(cls, data: Any, where: str) -> CompensationAction:
        if isinstance(data, str):
            data = {"action": data}
        if not isinstance(data, Mapping):
            raise ValueError(f"{where}: expected a mapping or 'module:function', got {data!r}")
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"{where}: unknown field(s) {sorted(unknown)}")
        raw_type = str(data.get("type", "UNDO")).upper()
        try:
            ctype = CompensationType(raw_type)
        except ValueError:
            raise ValueError(f"{where}.type: {raw_type!r} is not one of UNDO, RETRY, ALTERNATIVE, MANUAL")
        max_retries = data.get("max_retries", 3)
        if not isinstance(max_retries, int) or isinstance(max_retries, bool):
            raise ValueError(f"{where}.max_retries: expected an integer, got {max_retries!r}")
        return cls(
            type=ctype,
            action=ActionRef.parse(data["action"], f"{where}.action") if data.get("action") else None,
            alternative=(
                ActionRef.parse(data["alternative"], f"{where}.alternative") if data.get("alternative") else None
            ),
            max_retries=max_retries,
            timeout=(
                parse_duration(data["timeout"], f"{where}.timeout", allow_zero=False)
                if data.get("timeout") is not None
                else None
            ),
            retry_delay=parse_duration(data.get("retry_delay", 1.0), f"{where}.retry_delay"),
            note=str(data.get("note", "")),
        )
