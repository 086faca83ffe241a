"""SLA compliance and time series from the engine's 10-second stats rollups (kept two days in Redis),
so charts work without Prometheus. Pure: takes what ``EngineClient.stats`` / ``stats_series`` return.

The SLA table is the engine's (``engine.SLA_TARGETS``): per row, the histogram whose share at
the seed's target is the compliance, and our tighter bar (a p99 on the same or an overhead histogram).
Rollup histograms are log-scale with 5 %-wide buckets: shares and quantiles are within 5 %.

Latency SLIs of ours that have no seed target (``engine.LATENCY_INDICATORS``: the dispatch lag, due to
picked up) are reported beside the table (``indicators``): their quantiles and our bar on one of them.

Counters labelled by a service rather than a definition (``LABELLED_FAMILIES``: breaker trips, and
the per-service call outcomes ``service_calls`` (service, ok | failed | refused) the workers' service
port counts) are never filtered by ``definition`` and are also given per point by service (``by_service``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from engine import (
    BAR_QUANTILE,
    BREAKER_TRIPS,
    COUNTERS,
    HISTOGRAMS,
    LATENCY_INDICATORS,
    SERVICE_CALLS,
    SLA_TARGETS,
    LogHistogram,
    merge_all,
)

INTERVAL_S = 10
MAX_POINTS = 720
SAMPLE_OF = {spec.name: key for key, spec in HISTOGRAMS.items()}
"""Prometheus histogram name -> the sample name the rollups use."""
PROMETHEUS_OUTCOMES = frozenset(k for k, spec in COUNTERS.items() if spec.outcomes)
OUTCOME_FAMILIES = PROMETHEUS_OUTCOMES | {"steps", "compensations", SERVICE_CALLS}
LABELLED_FAMILIES = {BREAKER_TRIPS: "service", SERVICE_CALLS: "service"}
"""Counter families whose label is a service (not a definition)."""
QUANTILES = (("p50_s", 0.5), ("p90_s", 0.9), ("p95_s", 0.95), ("p99_s", 0.99))
"""The quantiles of an SLA row (p90 kept for older clients; the dashboard shows p95 and p99)."""


def _round(value: float | None, digits: int = 6) -> float | None:
    return None if value is None else round(value, digits)


def targets_table() -> list[dict[str, Any]]:
    return [
        {
            "name": t.sli,
            "description": t.what,
            "metric": SAMPLE_OF.get(t.metric, t.metric),
            "target_s": t.seconds,
            "objective": t.objective,
            "bar_metric": SAMPLE_OF.get(t.bar_metric, t.bar_metric),
            "bar_s": t.bar_seconds,
        }
        for t in SLA_TARGETS
    ]


def compliance_report(hists: Mapping[str, LogHistogram]) -> list[dict[str, Any]]:
    out = []
    empty = LogHistogram()
    for row in targets_table():
        h = hists.get(row["metric"], empty)
        bar = hists.get(row["bar_metric"], empty)
        bar_p99 = bar.quantile(BAR_QUANTILE)
        out.append(
            {
                **row,
                "count": h.count,
                "compliance": _round(h.fraction_at_most(row["target_s"])),
                "met": None if not h.count else h.fraction_at_most(row["target_s"]) >= row["objective"],
                **{name: _round(h.quantile(q)) for name, q in QUANTILES},
                "mean_s": _round(h.total / h.count) if h.count else None,
                "bar_count": bar.count,
                "bar_p99_s": _round(bar_p99),
                "bar_compliance": _round(bar.fraction_at_most(row["bar_s"])),
                "bar_met": None if bar_p99 is None else bar.fraction_at_most(row["bar_s"]) >= BAR_QUANTILE,
            }
        )
    return out


def indicators_report(hists: Mapping[str, LogHistogram]) -> list[dict[str, Any]]:
    """Per latency indicator: its quantiles and whether its bar is met (``quantile`` of it within ``bar_s``)."""
    out = []
    empty = LogHistogram()
    for ind in LATENCY_INDICATORS:
        h = hists.get(ind.sli, empty)
        within = h.fraction_at_most(ind.bar_seconds)
        out.append(
            {
                "name": ind.sli,
                "description": ind.what,
                "metric": ind.sli,
                "quantile": ind.quantile,
                "bar_s": ind.bar_seconds,
                "count": h.count,
                **{name: _round(h.quantile(q)) for name, q in QUANTILES},
                "mean_s": _round(h.total / h.count) if h.count else None,
                "bar_compliance": _round(within),
                "bar_met": None if within is None else within >= ind.quantile,
            }
        )
    return out


Counter = tuple[str, tuple[str, ...]]
"""A rollup counter's series (``engine.stats.Series``): its family and label values."""


def series_key(counter: Counter) -> tuple[str, str | None] | None:
    """``("steps", ("order", "charge", "failed"))`` -> (``steps.failed``, ``order``); the label is the
    definition (or the service of a breaker trip or a service call: ``("service_calls", ("payment",
    "ok"))`` -> (``service_calls.ok``, ``payment``))."""
    family, labels = counter
    if family in OUTCOME_FAMILIES and len(labels) >= 2:
        return f"{family}.{labels[-1]}", labels[0]
    if labels:
        return family, labels[0]
    return family, None


def build_series(
    rows: Sequence[tuple[int, Mapping[str, LogHistogram], Mapping[Counter, int]]],
    since: float,
    until: float,
    step_s: int,
    definition: str | None = None,
) -> tuple[list[dict[str, Any]], dict[str, dict[str, int]]]:
    """Points every ``step_s`` from ``since`` (aligned down) to ``until``, empty steps included."""
    first = int(since) // step_s * step_s
    buckets: dict[int, list[tuple[Mapping[str, LogHistogram], Mapping[Counter, int]]]] = defaultdict(list)
    for start, hist, counters in rows:
        if since - INTERVAL_S < start <= until:
            buckets[max(first, start // step_s * step_s)].append((hist, counters))
    breakdown: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    points = []
    for start in range(first, int(until) + 1, step_s):
        counters: dict[str, int] = defaultdict(int)
        services: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        hists: dict[str, list[LogHistogram]] = defaultdict(list)
        for hist, raw in buckets.get(start, ()):
            for name, h in hist.items():
                hists[name].append(h)
            for name, n in raw.items():
                key = series_key(name)
                if key is None:
                    continue
                family, label = key
                by_service = family.partition(".")[0] in LABELLED_FAMILIES
                if definition is not None and not by_service and label != definition:
                    continue
                counters[family] += n
                if label is not None:
                    breakdown[family][label] += n
                    if by_service:
                        services[label][family] += n
        points.append(
            {
                "start": float(start),
                "counters": dict(counters),
                "by_service": {name: dict(c) for name, c in services.items()},
                "rates": {k: round(v / step_s, 4) for k, v in counters.items()},
                "latency": _latency({name: merge_all(hs) for name, hs in hists.items()}),
            }
        )
    return points, {family: dict(labels) for family, labels in breakdown.items()}


def _latency(hists: Mapping[str, LogHistogram]) -> dict[str, dict[str, float | int | None]]:
    out: dict[str, dict[str, float | int | None]] = {}
    for row in targets_table():
        for metric, limit in ((row["metric"], row["target_s"]), (row["bar_metric"], row["bar_s"])):
            h = hists.get(metric)
            if h is None or not h.count or metric in out:
                continue
            out[metric] = _point_latency(h, limit)
    for ind in LATENCY_INDICATORS:
        h = hists.get(ind.sli)
        if h is not None and h.count and ind.sli not in out:
            out[ind.sli] = _point_latency(h, ind.bar_seconds)
    for metric, h in hists.items():
        if metric not in out and h.count:
            out[metric] = _point_latency(h, None)
    return out


def _point_latency(h: LogHistogram, limit: float | None) -> dict[str, float | int | None]:
    return {
        "count": h.count,
        "p50_s": _round(h.quantile(0.5)),
        "p95_s": _round(h.quantile(0.95)),
        "p99_s": _round(h.quantile(0.99)),
        "compliance": None if limit is None else _round(h.fraction_at_most(limit)),
    }
