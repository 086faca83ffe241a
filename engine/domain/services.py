"""Service endpoints a saga calls, their instances, and the policies that protect them.

Pure: configuration value objects with validation, and the load-balancing decisions (least
utilization against the 85 % target, rebalancing past a 30 % spread). The circuit breaker's state
machine runs in Redis, shared by every worker (``engine/persistence/scripts/breaker.py``: BREAKER_*); the
state a reader reports is :func:`circuit_state`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from engine.domain.policies import parse_duration
from engine.errors import DefinitionError

TARGET_UTILIZATION = 0.85
"""Load balancing rule 1: aim instances at 85 % of their capacity."""
REBALANCE_THRESHOLD = 0.30
"""Load balancing rule 2: a 30 % spread of utilizations triggers a rebalance."""
FAILURE_RATE_THRESHOLD = 0.50
"""Load balancing rule 3: the circuit opens at a 50 % error rate."""
HEALTH_INTERVAL = 30.0
"""Load balancing rule 4: health checks every 30 seconds."""

_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")


class CircuitState(StrEnum):
    CLOSED = "CLOSED"
    OPEN = "OPEN"
    HALF_OPEN = "HALF_OPEN"


class ForcedState(StrEnum):
    NONE = ""
    OPEN = "OPEN"
    CLOSED = "CLOSED"


class HealthStatus(StrEnum):
    HEALTHY = "HEALTHY"
    UNHEALTHY = "UNHEALTHY"
    UNKNOWN = "UNKNOWN"


def circuit_state(state: str, open_until_ms: int, now_ms: int, forced: str = "") -> str:
    """The state a call arriving at ``now_ms`` meets, from the breaker as stored (``state``,
    ``open_until`` and ``forced`` of its hash): forced OPEN refuses every call; an OPEN breaker whose
    open period is over is HALF_OPEN (the next call moves it there and is admitted as a trial).
    Without ``forced``: the breaker's own state, for views that show the force beside it.

    BREAKER_BEGIN (``engine/persistence/scripts/breaker.py``) keeps its own copy of this rule in Lua, to
    decide atomically as it admits a call: change both together."""
    if forced == ForcedState.OPEN:
        return CircuitState.OPEN.value
    if state == CircuitState.OPEN and open_until_ms <= now_ms:
        return CircuitState.HALF_OPEN.value
    return state


@dataclass(frozen=True)
class BreakerPolicy:
    """Count-based sliding window: open at ``failure_rate`` once ``min_calls`` are in the window."""

    window: int = 20
    min_calls: int = 10
    failure_rate: float = FAILURE_RATE_THRESHOLD
    open_seconds: float = 10.0
    half_open_calls: int = 3

    def problems(self, where: str) -> list[str]:
        out = []
        if not 1 <= self.window <= 1000:
            out.append(f"{where}.window must be 1..1000, got {self.window}")
        if not 1 <= self.min_calls <= self.window:
            out.append(f"{where}.min_calls must be 1..window ({self.window}), got {self.min_calls}")
        if not 0.0 < self.failure_rate <= 1.0:
            out.append(f"{where}.failure_rate must be in (0, 1], got {self.failure_rate}")
        if self.open_seconds <= 0:
            out.append(f"{where}.open_for must be > 0")
        if self.half_open_calls < 1:
            out.append(f"{where}.half_open_calls must be >= 1, got {self.half_open_calls}")
        return out


@dataclass(frozen=True)
class HealthPolicy:
    path: str = "/health"
    interval: float = HEALTH_INTERVAL
    timeout: float = 2.0


@dataclass(frozen=True)
class ServiceInstance:
    id: str
    url: str
    capacity: int = 10
    """Concurrent calls the instance takes at 100 % utilization."""


@dataclass(frozen=True)
class ServiceEndpoint:
    name: str
    instances: tuple[ServiceInstance, ...]
    operations: Mapping[str, str] = field(default_factory=dict)
    """Operation -> path on an instance (POST). An operation not listed is POSTed to ``/<operation>``."""
    timeout: float | None = None
    """Per-call timeout; the step's own timeout applies when shorter."""
    sticky: bool = False
    """Keep a saga (correlation id) on the instance it first used, while that instance is healthy."""
    breaker: BreakerPolicy = field(default_factory=BreakerPolicy)
    health: HealthPolicy = field(default_factory=HealthPolicy)
    target_utilization: float = TARGET_UTILIZATION
    rebalance_threshold: float = REBALANCE_THRESHOLD

    def path(self, operation: str) -> str:
        return self.operations.get(operation, f"/{operation}")

    def instance(self, instance_id: str) -> ServiceInstance | None:
        return next((i for i in self.instances if i.id == instance_id), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "instances": [{"id": i.id, "url": i.url, "capacity": i.capacity} for i in self.instances],
            "operations": dict(self.operations),
            "timeout": self.timeout,
            "sticky": self.sticky,
            "breaker": {
                "window": self.breaker.window,
                "min_calls": self.breaker.min_calls,
                "failure_rate": self.breaker.failure_rate,
                "open_for": self.breaker.open_seconds,
                "half_open_calls": self.breaker.half_open_calls,
            },
            "health": {"path": self.health.path, "interval": self.health.interval, "timeout": self.health.timeout},
            "target_utilization": self.target_utilization,
            "rebalance_threshold": self.rebalance_threshold,
        }


def parse_services(data: Any) -> list[ServiceEndpoint]:
    """``{"services": {name: {...}}}`` (or the inner mapping) into endpoints, every problem reported."""
    if isinstance(data, Mapping) and "services" in data:
        data = data["services"]
    if not isinstance(data, Mapping) or not data:
        raise DefinitionError(["services: expected a mapping of service name -> configuration"])
    problems: list[str] = []
    out = []
    for name, raw in data.items():
        try:
            out.append(parse_service(str(name), raw))
        except DefinitionError as exc:
            problems.extend(exc.problems)
    if problems:
        raise DefinitionError(problems)
    return out


_SERVICE_FIELDS = {
    "instances", "operations", "timeout", "sticky", "breaker", "health", "capacity", "target_utilization",
    "rebalance_threshold",
}  # fmt: skip


def parse_service(name: str, raw: Any) -> ServiceEndpoint:
    where = f"services.{name}"
    problems: list[str] = []
    if not _NAME.fullmatch(name):
        problems.append(f"{where}: a service name is lowercase letters, digits, '_' or '-'")
    if not isinstance(raw, Mapping):
        raise DefinitionError([f"{where}: expected a mapping"])
    unknown = set(raw) - _SERVICE_FIELDS
    if unknown:
        problems.append(f"{where}: unknown field(s) {sorted(unknown)}")

    def duration(value: Any, field_name: str, default: float | None) -> float | None:
        if value is None:
            return default
        try:
            return parse_duration(value, f"{where}.{field_name}", allow_zero=False)
        except ValueError as exc:
            problems.append(str(exc))
            return default

    default_capacity = raw.get("capacity", 10)
    instances = []
    raw_instances = raw.get("instances") or []
    if not isinstance(raw_instances, Sequence) or isinstance(raw_instances, str):
        problems.append(f"{where}.instances: expected a list of {{id, url}}")
        raw_instances = []
    seen = set()
    for i, inst in enumerate(raw_instances):
        w = f"{where}.instances[{i}]"
        if not isinstance(inst, Mapping) or not isinstance(inst.get("url"), str):
            problems.append(f"{w}: needs a 'url'")
            continue
        url = inst["url"].rstrip("/")
        if not re.match(r"^https?://", url):
            problems.append(f"{w}.url: {url!r} is not an http(s) URL")
        iid = str(inst.get("id") or f"{name}-{i + 1}")
        if iid in seen:
            problems.append(f"{w}: duplicate instance id {iid!r}")
        seen.add(iid)
        capacity = inst.get("capacity", default_capacity)
        if not isinstance(capacity, int) or isinstance(capacity, bool) or capacity < 1:
            problems.append(f"{w}.capacity must be a positive integer, got {capacity!r}")
            capacity = 1
        instances.append(ServiceInstance(iid, url, capacity))

    operations = raw.get("operations") or {}
    if not isinstance(operations, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) and v.startswith("/") for k, v in operations.items()
    ):
        problems.append(f"{where}.operations: expected operation -> '/path'")
        operations = {}

    b = raw.get("breaker") or {}
    if not isinstance(b, Mapping):
        problems.append(f"{where}.breaker: expected a mapping")
        b = {}
    breaker = BreakerPolicy(
        window=_int(b.get("window", 20), f"{where}.breaker.window", problems),
        min_calls=_int(b.get("min_calls", 10), f"{where}.breaker.min_calls", problems),
        failure_rate=_float(b.get("failure_rate", FAILURE_RATE_THRESHOLD), f"{where}.breaker.failure_rate", problems),
        open_seconds=duration(b.get("open_for"), "breaker.open_for", 10.0) or 10.0,
        half_open_calls=_int(b.get("half_open_calls", 3), f"{where}.breaker.half_open_calls", problems),
    )
    problems.extend(breaker.problems(f"{where}.breaker"))

    h = raw.get("health") or {}
    if not isinstance(h, Mapping):
        problems.append(f"{where}.health: expected a mapping")
        h = {}
    health = HealthPolicy(
        path=str(h.get("path", "/health")),
        interval=duration(h.get("interval"), "health.interval", HEALTH_INTERVAL) or HEALTH_INTERVAL,
        timeout=duration(h.get("timeout"), "health.timeout", 2.0) or 2.0,
    )
    target = _float(raw.get("target_utilization", TARGET_UTILIZATION), f"{where}.target_utilization", problems)
    spread = _float(raw.get("rebalance_threshold", REBALANCE_THRESHOLD), f"{where}.rebalance_threshold", problems)
    if problems:
        raise DefinitionError(problems)
    return ServiceEndpoint(
        name=name,
        instances=tuple(instances),
        operations=dict(operations),
        timeout=duration(raw.get("timeout"), "timeout", None),
        sticky=bool(raw.get("sticky", False)),
        breaker=breaker,
        health=health,
        target_utilization=target,
        rebalance_threshold=spread,
    )


def _int(value: Any, where: str, problems: list[str]) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        problems.append(f"{where}: expected an integer, got {value!r}")
        return 1
    return value


def _float(value: Any, where: str, problems: list[str]) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        problems.append(f"{where}: expected a number, got {value!r}")
        return 0.5
    return float(value)


# ---------------------------------------------------------------------------- load balancing
@dataclass(frozen=True)
class InstanceLoad:
    id: str
    capacity: int
    in_flight: int
    healthy: bool

    @property
    def utilization(self) -> float:
        return self.in_flight / self.capacity


def select_instance(
    loads: Sequence[InstanceLoad], sticky_id: str | None = None, target: float = TARGET_UTILIZATION
) -> InstanceLoad | None:
    """The healthy instance to call: the sticky one while it is under the target, else the least
    utilized (ties: the first listed). None when no instance is healthy."""
    healthy = [i for i in loads if i.healthy]
    if not healthy:
        return None
    if sticky_id is not None:
        pinned = next((i for i in healthy if i.id == sticky_id), None)
        if pinned is not None and pinned.utilization < target:
            return pinned
    return min(healthy, key=lambda i: i.utilization)


def needs_rebalance(loads: Sequence[InstanceLoad], threshold: float = REBALANCE_THRESHOLD) -> bool:
    """True when the healthy instances' utilizations spread by more than ``threshold``."""
    utils = [i.utilization for i in loads if i.healthy]
    return len(utils) > 1 and max(utils) - min(utils) > threshold


def rebalance_moves(loads: Sequence[InstanceLoad], threshold: float = REBALANCE_THRESHOLD) -> tuple[str, str] | None:
    """(from, to): move sticky sessions off the busiest instance to the least utilized one."""
    if not needs_rebalance(loads, threshold):
        return None
    healthy = [i for i in loads if i.healthy]
    busiest = max(healthy, key=lambda i: i.utilization)
    idlest = min(healthy, key=lambda i: i.utilization)
    return busiest.id, idlest.id
