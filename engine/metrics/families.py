"""Prometheus metric families from what the collector read: the recorded totals with every known label
combination present, breakers and instances, the waveless controller. Pure: no I/O here."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString

from engine.domain.services import circuit_state
from engine.metrics.catalogue import (
    BREAKER_STATES,
    COUNTERS,
    FORCED_MODES,
    HISTOGRAMS,
    WAVELESS_LIMITS,
    WAVELESS_MODES,
    WAVELESS_OUTCOMES,
    WORKFLOW_OUTCOMES,
)
from engine.persistence.metrics_store import ServiceReading
from engine.persistence.series_fields import as_float
from engine.stats import Totals

SAFE_LABEL = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
"""Label values taken from configuration that do not match are left out."""


@dataclass(frozen=True)
class Instance:
    id: str
    capacity: int


@dataclass(frozen=True)
class Service:
    """What the metrics need of an endpoint's configuration."""

    name: str
    target_utilization: float
    instances: tuple[Instance, ...]


def recorded(totals: Totals, types: Mapping[str, list[str]]) -> Iterator[Metric]:
    """The cumulative counters and histograms workers and clients flushed, with every known label
    combination present (zero when nothing was recorded yet). ``types``: workflow type -> step ids."""
    counters: dict[str, dict[tuple[str, ...], float]] = {name: {} for name in COUNTERS}
    hist: dict[str, dict[tuple[str, ...], list[int]]] = {name: {} for name in HISTOGRAMS}
    sums: dict[str, dict[tuple[str, ...], float]] = {name: {} for name in HISTOGRAMS}
    for series, value in totals.counters.items():
        spec_c = COUNTERS.get(series.name)
        if spec_c is not None and len(series.labels) == len(spec_c.labels):
            counters[series.name][series.labels] = value
    for series, tally in totals.histograms.items():
        spec_h = HISTOGRAMS.get(series.name)
        if spec_h is None or len(series.labels) != len(spec_h.labels):
            continue
        sums[series.name][series.labels] = tally.total
        known = [(i, n) for i, n in tally.buckets.items() if 0 <= i <= len(spec_h.buckets)]
        if known:
            row = hist[series.name][series.labels] = [0] * (len(spec_h.buckets) + 1)
            for i, n in known:
                row[i] += n

    for name, spec_c in COUNTERS.items():
        values = counters[name]
        for combo in _combos(spec_c.labels, types, spec_c.outcomes or WORKFLOW_OUTCOMES):
            values.setdefault(combo, 0.0)
        family = CounterMetricFamily(spec_c.name, spec_c.help, labels=list(spec_c.labels))
        for labels, v in sorted(values.items()):
            family.add_metric(list(labels), v)
        yield family
    for name, spec_h in HISTOGRAMS.items():
        rows = hist[name]
        for combo in _combos(spec_h.labels, types, WORKFLOW_OUTCOMES):
            rows.setdefault(combo, [0] * (len(spec_h.buckets) + 1))
        family_h = HistogramMetricFamily(spec_h.name, spec_h.help, labels=list(spec_h.labels))
        for labels, row in sorted(rows.items()):
            cumulative, buckets = 0, []
            for bound, n in zip((*spec_h.buckets, float("inf")), row, strict=True):
                cumulative += n
                buckets.append((floatToGoString(bound), cumulative))
            family_h.add_metric(list(labels), buckets, sums[name].get(labels, 0.0))
        yield family_h


def services(configured: Sequence[Service], readings: Mapping[str, ServiceReading], now_ms: int) -> Iterator[Metric]:
    """Breakers (their effective state: :func:`engine.domain.services.circuit_state`), call outcomes,
    and each instance's health, load and capacity."""
    state = GaugeMetricFamily(
        "wes_circuit_breaker_state", "Circuit breaker state per service (1 for the current state).",
        labels=["service", "state"],
    )  # fmt: skip
    forced = GaugeMetricFamily(
        "wes_circuit_breaker_forced", "1 while an operator forces the breaker OPEN or CLOSED.",
        labels=["service", "mode"],
    )  # fmt: skip
    trips = CounterMetricFamily("wes_circuit_breaker_trips", "Times the breaker opened.", labels=["service"])
    calls = CounterMetricFamily(
        "wes_service_calls", "Service calls through the breaker by outcome (failed: error, timeout, 5xx).",
        labels=["service", "outcome"],
    )  # fmt: skip
    target = GaugeMetricFamily(
        "wes_service_target_utilization_ratio", "Load balancing target utilization.", labels=["service"]
    )
    up = GaugeMetricFamily(
        "wes_service_instance_up",
        "1 if the instance takes traffic (healthy, or not checked yet), 0 if its health check fails.",
        labels=["service", "service_instance"],
    )
    util = GaugeMetricFamily(
        "wes_service_instance_utilization_ratio",
        "Calls in flight / capacity.",
        labels=["service", "service_instance"],
    )
    inflight = GaugeMetricFamily(
        "wes_service_instance_in_flight", "Calls in flight on the instance.", labels=["service", "service_instance"]
    )
    capacity = GaugeMetricFamily(
        "wes_service_instance_capacity",
        "Concurrent calls at 100 % utilization.",
        labels=["service", "service_instance"],
    )
    check = GaugeMetricFamily(
        "wes_service_health_check_latency_seconds", "Latency of the instance's last health check.",
        labels=["service", "service_instance"],
    )  # fmt: skip
    for cfg in configured:
        name = cfg.name
        reading = readings[name]
        breaker = reading.breaker
        current = circuit_state(breaker.state, breaker.open_until_ms, now_ms, breaker.forced)
        for s in BREAKER_STATES:
            state.add_metric([name, s], 1.0 if s == current else 0.0)
        for m in FORCED_MODES:
            forced.add_metric([name, m], 1.0 if m == breaker.forced else 0.0)
        trips.add_metric([name], breaker.trips)
        calls.add_metric([name, "ok"], max(breaker.calls - breaker.failures, 0))
        calls.add_metric([name, "failed"], breaker.failures)
        target.add_metric([name], cfg.target_utilization)
        for inst in cfg.instances:
            iid = inst.id
            n = reading.in_flight[iid]
            record = reading.health.get(iid, {})
            status = record.get("status", "UNKNOWN")
            up.add_metric([name, iid], 0.0 if status == "UNHEALTHY" else 1.0)
            util.add_metric([name, iid], n / inst.capacity)
            inflight.add_metric([name, iid], n)
            capacity.add_metric([name, iid], inst.capacity)
            if record.get("latency_ms") is not None:
                check.add_metric([name, iid], float(record["latency_ms"]) / 1000.0)
    yield from (state, forced, trips, calls, target, up, util, inflight, capacity, check)


def waveless(state: Mapping[str, str]) -> Iterator[Metric]:
    """The waveless release controller's state hash (engine/persistence/waveless_store.py
    ``STATE_FIELDS``), read defensively: a missing hash or field reads as zero."""
    yield gauge(
        "wes_waveless_batch_size", "Orders per release, at most, as last decided.", as_float(state.get("batch_size"))
    )
    yield gauge(
        "wes_waveless_release_rate_per_second",
        "Orders released per second, at most, as last decided.",
        as_float(state.get("rate")),
    )
    yield gauge(
        "wes_waveless_utilization_ratio",
        "Utilization the controller measured: max(worker, service) utilization.",
        as_float(state.get("utilization")),
    )
    yield gauge(
        "wes_waveless_target_utilization_ratio",
        "Utilization the controller aims at.",
        as_float(state.get("target_utilization")) or 0.85,
    )
    orders = CounterMetricFamily(
        "wes_waveless_orders", "Orders through the intake: accepted, released (saga started), rejected.",
        labels=["outcome"],
    )  # fmt: skip
    for outcome in WAVELESS_OUTCOMES:
        orders.add_metric([outcome], as_float(state.get(f"{outcome}_total")))
    yield orders
    yield gauge(
        "wes_waveless_last_decision_timestamp_seconds",
        "When the controller last adjusted (0: never).",
        as_float(state.get("updated_at")),
    )
    current = str(state.get("mode") or "")
    mode = GaugeMetricFamily("wes_waveless_mode", "1 for the release mode in force.", labels=["mode"])
    for m in sorted({*WAVELESS_MODES, current} if SAFE_LABEL.fullmatch(current) else set(WAVELESS_MODES)):
        mode.add_metric([m], 1.0 if m == current else 0.0)
    yield mode
    held = str(state.get("limit") or "")
    limit = GaugeMetricFamily(
        "wes_waveless_limit", "1 for what held the last release back (batch, rate, headroom, wave, idle).",
        labels=["limit"],
    )  # fmt: skip
    for value in WAVELESS_LIMITS:
        limit.add_metric([value], 1.0 if value == held else 0.0)
    yield limit


def _combos(labels: Sequence[str], types: Mapping[str, list[str]], outcomes: Sequence[str]) -> list[tuple[str, ...]]:
    """Label combinations known in advance for a metric with these label names."""
    if not labels:
        return [()]
    if labels[0] != "workflow_type":
        return []
    out: list[tuple[str, ...]] = []
    for wtype, steps in types.items():
        rows: list[tuple[str, ...]] = [(wtype,)]
        for label in labels[1:]:
            if label == "step":
                rows = [(*r, s) for r in rows for s in steps]
            elif label == "outcome":
                rows = [(*r, o) for r in rows for o in outcomes]
            else:
                rows = []
        out.extend(rows)
    return out


def gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value)
