"""Per-instance chaos knobs (in memory), their validation, and lognormal latencies."""

from __future__ import annotations

import json
import math
import random
from dataclasses import asdict, dataclass, field
from typing import Any

Z99 = 2.3263478740408408
"""The standard normal's 99th percentile."""
MAX_P99_RATIO = math.exp(Z99 * Z99 / 2)
"""A lognormal's p99/mean is at most e^(z²/2) ≈ 14.97 (at sigma = z); beyond it no lognormal fits."""
TAIL_CAP = 10.0
"""A drawn latency is capped at this many times the p99 (the lognormal tail is unbounded)."""

KNOBS = ("error_rate", "error_status", "latency_ms", "down", "health_delay_s", "latency_after_apply_ms")


class ChaosError(ValueError):
    """Invalid knob values; ``problems`` lists one precise message per problem."""

    def __init__(self, problems: list[str]):
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass
class Latency:
    """A latency distribution given by its mean and p99 (ms); mean 0 means none, p99 == mean a constant."""

    mean: float = 0.0
    p99: float = 0.0

    def params(self) -> tuple[float, float]:
        """(mu, sigma) of the lognormal with this mean and p99 (the smaller sigma of the two that fit)."""
        d = math.log(self.p99 / self.mean)
        sigma = Z99 - math.sqrt(max(Z99 * Z99 - 2 * d, 0.0))
        return math.log(self.mean) - sigma * sigma / 2, sigma

    def sample_s(self, rng: random.Random) -> float:
        """One draw, in seconds."""
        if self.mean <= 0:
            return 0.0
        mu, sigma = self.params()
        if sigma == 0:
            return self.mean / 1000
        return min(rng.lognormvariate(mu, sigma), TAIL_CAP * self.p99) / 1000


@dataclass
class Chaos:
    error_rate: float = 0.0
    error_status: int = 503
    latency_ms: Latency = field(default_factory=Latency)
    down: bool = False
    health_delay_s: float = 0.0
    latency_after_apply_ms: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def update(self, raw: Any) -> None:
        """Apply a partial update; all or nothing (raises :class:`ChaosError` listing every problem)."""
        if not isinstance(raw, dict):
            raise ChaosError([f"the body must be a JSON object of knobs, got {_kind(raw)}"])
        problems: list[str] = []
        values: dict[str, Any] = {}
        for name, value in raw.items():
            if name not in KNOBS:
                problems.append(f"unknown chaos knob {name!r} (known: {', '.join(sorted(KNOBS))})")
                continue
            parsed = _PARSERS[name](name, value, problems)
            if parsed is not None:
                values[name] = parsed
        if problems:
            raise ChaosError(problems)
        for name, value in values.items():
            setattr(self, name, value)


def _kind(value: Any) -> str:
    """How a bad value is shown in a message: JSON spelling for null/booleans, containers by type."""
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    if isinstance(value, dict | list):
        return "an object" if isinstance(value, dict) else "an array"
    return f"{type(value).__name__} {value!r}"


def _number(name: str, value: Any, problems: list[str], *, low: float = 0.0, high: float | None = None) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        problems.append(f"{name} must be a number, got {_kind(value)}")
        return None
    if not math.isfinite(value):
        problems.append(f"{name} must be a finite number, got {value!r}")
        return None
    if high is not None and not low <= value <= high:
        problems.append(f"{name} must be between {low:g} and {high:g}, got {value!r}")
        return None
    if value < low:
        problems.append(f"{name} must be >= {low:g}, got {value!r}")
        return None
    return float(value)


def _error_rate(name: str, value: Any, problems: list[str]) -> float | None:
    return _number(name, value, problems, low=0.0, high=1.0)


def _error_status(name: str, value: Any, problems: list[str]) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or not 400 <= value <= 599:
        problems.append(f"{name} must be an HTTP error status (an integer 400..599), got {_kind(value)}")
        return None
    return value


def _down(name: str, value: Any, problems: list[str]) -> bool | None:
    if not isinstance(value, bool):
        problems.append(f"{name} must be true or false, got {_kind(value)}")
        return None
    return value


def _non_negative(name: str, value: Any, problems: list[str]) -> float | None:
    return _number(name, value, problems)


def _latency(name: str, value: Any, problems: list[str]) -> Latency | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        ms = _number(name, value, problems)
        return None if ms is None else Latency(ms, ms)
    if not isinstance(value, dict):
        problems.append(f'{name} must be an object {{"mean": ms, "p99": ms}} or a number of ms, got {_kind(value)}')
        return None
    unknown = sorted(set(value) - {"mean", "p99"})
    if unknown:
        problems.append(f"{name}: unknown field(s) {', '.join(map(repr, unknown))} (known: 'mean', 'p99')")
        return None
    if "mean" not in value:
        problems.append(f"{name}.mean is required")
        return None
    count = len(problems)
    mean = _number(f"{name}.mean", value["mean"], problems)
    p99 = _number(f"{name}.p99", value["p99"], problems) if "p99" in value else mean
    if len(problems) > count or mean is None or p99 is None:
        return None
    if mean == 0:
        return Latency()
    if p99 < mean:
        problems.append(f"{name}.p99 must be >= {name}.mean, got p99 {p99:g} < mean {mean:g}")
        return None
    if p99 / mean > MAX_P99_RATIO:
        problems.append(
            f"{name}.p99 must be at most {MAX_P99_RATIO:.2f} x {name}.mean for a lognormal fit, "
            f"got p99/mean = {p99 / mean:.2f}"
        )
        return None
    return Latency(mean, p99)


_PARSERS = {
    "error_rate": _error_rate,
    "error_status": _error_status,
    "latency_ms": _latency,
    "down": _down,
    "health_delay_s": _non_negative,
    "latency_after_apply_ms": _non_negative,
}
