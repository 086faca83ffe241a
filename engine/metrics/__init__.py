"""Prometheus metrics of the engine: the catalogue of every name, bucket and label, the recorder that
workers and clients feed, and the collector that serves ``/metrics``.

How the numbers travel (see README, "Metrics"):

1. **Record** (hot path): the saga service calls ``StatsRecorder.observe(name, seconds, labels)`` and
   ``incr("steps", (type, step, outcome))``: an append to a list. Nothing here runs per step.
2. **Fold + flush** (once per ``stats_flush_seconds``, in the worker's heartbeat thread, or a client's
   flusher): :class:`MetricsRecorder` puts each sample in a fixed-bucket histogram (the bounds of
   :data:`HISTOGRAMS`, every SLA target one of them) and adds up the counters, as data (series: a
   name and its label values); ``Engine.flush_stats`` hands them to
   ``engine.persistence.metrics_store``, which ``HINCRBY``s them into one Redis hash. The hash is
   cumulative and never reset, so every worker on every host adds to the same monotonic counters.
3. **Serve** (per scrape): :class:`EngineCollector` reads that hash plus live state through the
   engine's stores (workflows by status, the attention backlog, workflows past their deadline,
   breakers, instance health and load, queues, the waveless controller, worker heartbeats) and
   yields Prometheus metric families. ``wes exporter`` serves it; the API can serve the same
   (:func:`build_registry`, :func:`render`). A scrape costs about a dozen round trips (one per store
   read, each pipelined), O(series), never O(workflows).
"""

from engine.metrics.catalogue import (
    BAR_QUANTILE,
    BREAKER_STATES,
    BREAKER_TRIPS,
    CALL_BUCKETS,
    COUNTERS,
    DISPATCH_BUCKETS,
    FAST_BUCKETS,
    HISTOGRAMS,
    LATENCY_INDICATORS,
    LONG_BUCKETS,
    SAGA_SUCCESS_OBJECTIVE,
    SERVICE_CALLS,
    SLA_TARGETS,
    CounterSpec,
    HistogramSpec,
    LatencyIndicator,
    SlaTarget,
)
from engine.metrics.collector import EngineCollector, build_registry, render
from engine.metrics.recorder import MetricsRecorder, recorder_for

__all__ = [
    "BAR_QUANTILE",
    "BREAKER_STATES",
    "BREAKER_TRIPS",
    "CALL_BUCKETS",
    "COUNTERS",
    "DISPATCH_BUCKETS",
    "FAST_BUCKETS",
    "HISTOGRAMS",
    "LATENCY_INDICATORS",
    "LONG_BUCKETS",
    "SAGA_SUCCESS_OBJECTIVE",
    "SERVICE_CALLS",
    "SLA_TARGETS",
    "CounterSpec",
    "EngineCollector",
    "HistogramSpec",
    "LatencyIndicator",
    "MetricsRecorder",
    "SlaTarget",
    "build_registry",
    "recorder_for",
    "render",
]
