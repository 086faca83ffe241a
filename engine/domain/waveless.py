"""Waveless order release: the control law, its bounds, the fixed-wave baseline and order patterns.

Pure (stdlib only, the clock is passed in). ``engine.saga.waveless_controller.ReleaseController``
measures the load, calls these functions and releases orders; this module decides how many.

**Two modes.** ``fixed``: the classic baseline, ``wave_size`` orders every ``wave_interval`` seconds
(waves at ``anchor + k * interval``; a missed wave is not doubled). ``waveless``: orders are released
continuously, at most ``batch_size`` per release, at most ``rate`` orders/s, and never past the
utilization target (the headroom rule below). An operator may pin the batch size or the rate;
a pin replaces the law (and the headroom rule) until unpinned.

**The law** (AIMD, one adjustment per control interval, ``calculate_dynamic_batch_size``), first
match wins:

1. a breaker of a service the saga calls is OPEN: ``batch * breaker_decrease`` (sagas released now
   would only wait for the breaker or compensate);
2. utilization above the target (85 %): ``batch * decrease``;
3. step latency p95 above its SLA: ``batch * decrease``;
4. spare capacity (none of the above) and the batch size held orders back since the last adjustment
   (orders were still waiting after a full batch): ``batch + increase``;
5. otherwise hold: growing a batch that is not the limit would only build up a burst for later.

Results are clamped to ``[min_batch, max_batch]``; the release rate follows the batch
(``batch / release_interval``) up to ``max_rate``.

**Utilization** (``SystemLoad.utilization``) is the larger of
- worker utilization: sagas in flight (CREATED + RUNNING + COMPENSATING, all definitions: workers are
  shared) / (live workers * ``worker_slots``), where ``worker_slots`` is how many sagas one worker
  process advances at once (by default the claim batch: a dispatch job claims that many due sagas and
  runs them interleaved); above 1.0, sagas queue for a worker;
- service utilization: the highest calls in flight / capacity over the instances of the services the
  saga calls (the load balancer's own measure, against the same 85 % target).

**Headroom**: in waveless mode a release never takes the sagas in flight past
``target_utilization * live workers * worker_slots``, so the engine's own backlog stays bounded and
orders wait in the intake (FIFO, cheap, visible) rather than in the schedule.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from enum import StrEnum

TARGET_UTILIZATION = 0.85
"""The utilization the controller aims at (the load balancer aims instances at the same 85 %)."""


class Mode(StrEnum):
    FIXED = "fixed"
    WAVELESS = "waveless"


class Pattern(StrEnum):
    STEADY = "steady"
    BURSTY = "bursty"
    RAMP = "ramp"


# ============================================================================ configuration
@dataclass(frozen=True)
class ControlParams:
    """Bounds and constants of the law."""

    min_batch: int = 1
    max_batch: int = 50
    max_rate: float = 200.0
    """Orders released per second, at most (whatever the batch size)."""
    target_utilization: float = TARGET_UTILIZATION
    latency_sla_s: float = 0.5
    """Step execution p95 above this shrinks the batch."""
    increase: int = 2
    """Additive increase per adjustment."""
    decrease: float = 0.7
    """Multiplicative decrease on utilization or latency past target."""
    breaker_decrease: float = 0.5
    """Multiplicative decrease while a breaker is open."""
    release_interval_s: float = 0.1
    """How often a release happens at most once orders wait (the rate is batch / interval)."""

    def problems(self) -> list[str]:
        out = []
        if self.min_batch < 1:
            out.append(f"min_batch must be >= 1, got {self.min_batch}")
        if self.max_batch < self.min_batch:
            out.append(f"max_batch ({self.max_batch}) must be >= min_batch ({self.min_batch})")
        if not self.max_rate > 0:
            out.append(f"max_rate must be > 0, got {self.max_rate}")
        if not 0 < self.target_utilization <= 1:
            out.append(f"target_utilization must be in (0, 1], got {self.target_utilization}")
        if not self.latency_sla_s > 0:
            out.append(f"latency SLA must be > 0, got {self.latency_sla_s}")
        if self.increase < 1:
            out.append(f"increase must be >= 1, got {self.increase}")
        for name in ("decrease", "breaker_decrease"):
            value = getattr(self, name)
            if not 0 < value < 1:
                out.append(f"{name} must be in (0, 1), got {value}")
        if not self.release_interval_s > 0:
            out.append(f"release_interval_s must be > 0, got {self.release_interval_s}")
        return out

    def validate(self) -> ControlParams:
        problems = self.problems()
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def clamp_batch(self, size: float) -> int:
        return max(self.min_batch, min(self.max_batch, int(size)))

    def rate_for(self, batch: int) -> float:
        return min(self.max_rate, batch / self.release_interval_s)


@dataclass(frozen=True)
class ProcessingStrategy:
    """What ``enable_waveless_mode`` switches to."""

    mode: Mode = Mode.WAVELESS
    wave_size: int = 100
    wave_interval_s: float = 5.0

    @classmethod
    def parse(cls, mode: str, wave_size: int | None = None, wave_interval_s: float | None = None) -> ProcessingStrategy:
        try:
            m = Mode(str(mode).lower())
        except ValueError:
            raise ValueError(f"mode must be one of {', '.join(Mode)}, got {mode!r}") from None
        out = cls(m)
        if wave_size is not None:
            out = replace(out, wave_size=wave_size)
        if wave_interval_s is not None:
            out = replace(out, wave_interval_s=wave_interval_s)
        return out.validate()

    def validate(self) -> ProcessingStrategy:
        if self.wave_size < 1:
            raise ValueError(f"wave size must be >= 1, got {self.wave_size}")
        if not self.wave_interval_s > 0:
            raise ValueError(f"wave interval must be > 0 s, got {self.wave_interval_s}")
        return self


@dataclass(frozen=True)
class Pins:
    """Operator overrides of the law: a fixed batch size or a fixed rate (orders/s)."""

    batch: int | None = None
    rate: float | None = None

    def validate(self, params: ControlParams) -> Pins:
        if self.batch is not None and self.rate is not None:
            raise ValueError("pin either the batch size or the rate, not both")
        if self.batch is not None and not params.min_batch <= self.batch <= params.max_batch:
            raise ValueError(f"pinned batch must be within [{params.min_batch}, {params.max_batch}], got {self.batch}")
        if self.rate is not None and not 0 < self.rate <= params.max_rate:
            raise ValueError(f"pinned rate must be within (0, {params.max_rate:g}] orders/s, got {self.rate:g}")
        return self

    @property
    def active(self) -> bool:
        return self.batch is not None or self.rate is not None


# ============================================================================ load
@dataclass(frozen=True)
class SystemLoad:
    """One measurement of what the release affects (see the module docstring for utilization)."""

    queue_depth: int = 0
    """Orders accepted and not yet released."""
    in_flight: int = 0
    """Sagas CREATED, RUNNING or COMPENSATING (all definitions)."""
    live_workers: int = 1
    worker_slots: int = 16
    service_utilization: float = 0.0
    """Highest calls in flight / capacity over the saga's service instances."""
    latency_p95_s: float | None = None
    """Step execution p95 over the latency window (None: no step ran in it)."""
    open_breakers: tuple[str, ...] = ()
    batch_limited: bool = False
    """The batch size held orders back since the last adjustment (a full batch left orders waiting)."""
    throughput: float | None = None
    """Sagas finished per second over the latency window (observability only)."""

    @property
    def capacity(self) -> int:
        return max(1, self.live_workers) * max(1, self.worker_slots)

    @property
    def worker_utilization(self) -> float:
        return self.in_flight / self.capacity

    @property
    def utilization(self) -> float:
        return max(self.worker_utilization, self.service_utilization)

    def headroom(self, target: float) -> int:
        """Sagas that may still be started before the in-flight count reaches the target."""
        return max(0, math.floor(target * self.capacity + 1e-9) - self.in_flight)


@dataclass(frozen=True)
class ControlState:
    """The controller's output: what releases obey until the next adjustment."""

    batch_size: int
    rate: float
    reason: str = ""
    kind: str = "hold"
    """grow | shrink | hold | pinned | clamp: what the last adjustment did."""


# ============================================================================ the law
def _pct(x: float) -> str:
    return f"{x * 100:.0f}%"


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def calculate_dynamic_batch_size(current: int, load: SystemLoad, params: ControlParams) -> tuple[int, str]:
    """The next batch size under the AIMD law, and why (see the module docstring)."""
    current = params.clamp_batch(current)
    util = load.utilization
    if load.open_breakers:
        size = params.clamp_batch(math.floor(current * params.breaker_decrease))
        return size, f"breaker open ({', '.join(load.open_breakers)}): x{params.breaker_decrease:g}"
    if util > params.target_utilization:
        size = params.clamp_batch(math.floor(current * params.decrease))
        which = "workers" if load.worker_utilization >= load.service_utilization else "services"
        return (
            size,
            f"utilization {_pct(util)} ({which}) > target {_pct(params.target_utilization)}: x{params.decrease:g}",
        )
    if load.latency_p95_s is not None and load.latency_p95_s > params.latency_sla_s:
        size = params.clamp_batch(math.floor(current * params.decrease))
        return (
            size,
            f"step latency p95 {_ms(load.latency_p95_s)} > SLA {_ms(params.latency_sla_s)}: x{params.decrease:g}",
        )
    spare = f"utilization {_pct(util)} < {_pct(params.target_utilization)}"
    if load.latency_p95_s is not None:
        spare += f", p95 {_ms(load.latency_p95_s)} <= SLA"
    if load.batch_limited:
        size = params.clamp_batch(current + params.increase)
        if size == current:
            return size, f"spare capacity ({spare}), orders held back, at max batch {params.max_batch}"
        return size, f"spare capacity ({spare}) and orders held back by the batch: +{params.increase}"
    if load.queue_depth == 0:
        return current, f"holding: no orders waiting ({spare})"
    return current, f"holding: the batch size is not what holds orders back ({spare})"


def adjust_processing_rate(
    state: ControlState, load: SystemLoad, params: ControlParams, pins: Pins = Pins()
) -> ControlState:
    """One control step: the new batch size and rate, or the operator's pin."""
    if pins.batch is not None:
        batch = params.clamp_batch(pins.batch)
        return ControlState(batch, params.rate_for(batch), f"pinned batch {batch} (operator)", "pinned")
    if pins.rate is not None:
        rate = min(params.max_rate, pins.rate)
        batch = params.clamp_batch(math.ceil(rate * params.release_interval_s))
        return ControlState(batch, rate, f"pinned rate {rate:g}/s (operator)", "pinned")
    size, reason = calculate_dynamic_batch_size(state.batch_size, load, params)
    if size > state.batch_size:
        kind = "grow"
    elif size < state.batch_size:
        kind = "shrink"
    else:
        kind = "hold"
    return ControlState(size, params.rate_for(size), reason, kind)


def release_quota(
    state: ControlState, load: SystemLoad, params: ControlParams, tokens: float, pins: Pins = Pins()
) -> tuple[int, str]:
    """How many orders one waveless release may start now, and what limits it: ``batch``, ``rate`` (the
    token bucket holds ``tokens``) or ``headroom`` (the utilization target; ignored under a pin)."""
    limits = [(state.batch_size, "batch"), (math.floor(tokens + 1e-9), "rate")]
    if not pins.active:
        limits.append((load.headroom(params.target_utilization), "headroom"))
    n, why = min(limits, key=lambda x: x[0])
    return max(0, n), why


class TokenBucket:
    """Admits ``rate`` orders per second with bursts up to ``burst``; time is passed in."""

    def __init__(self, rate: float, burst: float, now: float):
        self.rate = rate
        self.burst = max(1.0, burst)
        self.tokens = self.burst
        self.at = now

    def configure(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = max(1.0, burst)
        self.tokens = min(self.tokens, self.burst)

    def available(self, now: float) -> float:
        if now > self.at:
            self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
            self.at = now
        return self.tokens

    def take(self, n: int, now: float) -> None:
        self.available(now)
        self.tokens = max(0.0, self.tokens - n)

    def wait_for(self, n: float, now: float) -> float:
        """Seconds until ``n`` tokens are there."""
        missing = min(n, self.burst) - self.available(now)
        return 0.0 if missing <= 0 else missing / self.rate


# ============================================================================ fixed waves
def wave_time(anchor: float, interval: float, now: float) -> float | None:
    """Time of the latest wave due at ``now`` (waves at anchor + k * interval, k >= 1); None before the first."""
    if now < anchor + interval:
        return None
    return anchor + ((now - anchor) // interval) * interval


def wave_due(anchor: float, interval: float, now: float, last_wave_at: float) -> float | None:
    """The wave to release now (its scheduled time), or None when the latest one was released already.
    Missed waves are not doubled: only the latest is due."""
    w = wave_time(anchor, interval, now)
    if w is None or w <= last_wave_at + 1e-6:
        return None
    return w


def next_wave_at(anchor: float, interval: float, now: float) -> float:
    w = wave_time(anchor, interval, now)
    return anchor + interval if w is None else w + interval


# ============================================================================ order patterns
@dataclass(frozen=True)
class OrderPattern:
    """Arrival rate over time: ``steady`` (the base rate), ``bursty`` (the base rate with a lunch peak:
    up to ``peak_rate`` between 30 % and 70 % of the duration, flat at the top from 40 % to 60 %) or
    ``ramp`` (linear from the base rate to the peak)."""

    pattern: Pattern
    rate: float
    duration_s: float
    peak_rate: float | None = None

    def __post_init__(self) -> None:
        if not self.rate > 0:
            raise ValueError(f"rate must be > 0, got {self.rate}")
        if not self.duration_s > 0:
            raise ValueError(f"duration must be > 0, got {self.duration_s}")
        if self.peak_rate is not None and not self.peak_rate > 0:
            raise ValueError(f"peak rate must be > 0, got {self.peak_rate}")

    @property
    def peak(self) -> float:
        return self.peak_rate if self.peak_rate is not None else 4 * self.rate

    def rate_at(self, t: float) -> float:
        d, base, peak = self.duration_s, self.rate, self.peak
        if self.pattern is Pattern.STEADY:
            return base
        if self.pattern is Pattern.RAMP:
            return base + (peak - base) * min(max(t / d, 0.0), 1.0)
        x = t / d
        if x < 0.3 or x >= 0.7:
            return base
        if x < 0.4:
            return base + (peak - base) * (x - 0.3) / 0.1
        if x < 0.6:
            return peak
        return peak - (peak - base) * (x - 0.6) / 0.1

    def arrivals(self, step_s: float = 0.001) -> list[float]:
        """Offsets (s from the start) of every order: the k-th arrives when the integral of the
        rate reaches k. Deterministic, so two runs replay the same orders."""
        out: list[float] = []
        total = 0.0
        t = 0.0
        n_steps = math.ceil(self.duration_s / step_s)
        for i in range(n_steps):
            t = i * step_s
            total += self.rate_at(t + step_s / 2) * step_s
            while total + 1e-9 >= len(out) + 1:
                out.append(round(t + step_s, 6))
        return out

    def expected_orders(self) -> int:
        return len(self.arrivals())


def percentile(sorted_values: Sequence[float], q: float) -> float | None:
    """Nearest-rank quantile of an already sorted sequence."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(q * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]
