"""Prometheus metrics of the engine: every name, bucket and label in one place, the recorder that
workers and clients feed, and the collector that serves ``/metrics``.

How the numbers travel (see README, "Metrics"):

1. **Record** (hot path): the saga service calls ``StatsRecorder.observe(name, seconds, labels)`` and
   ``incr("steps|<type>|<step>|completed")``: an append to a list. Nothing here runs per step.
2. **Fold + flush** (once per ``stats_flush_seconds``, in the worker's heartbeat thread, or a client's
   flusher): :class:`MetricsRecorder` puts each sample in a fixed-bucket histogram (the bounds of
   :data:`HISTOGRAMS`, every SLA target one of them) and adds the counters, then ``HINCRBY``s them
   into one Redis hash (``Keys.metrics``). The hash is cumulative and never reset, so every worker
   on every host adds to the same monotonic counters.
3. **Serve** (per scrape): :class:`EngineCollector` reads that hash plus live state straight from Redis
   (workflows by status, the attention backlog, workflows past their deadline, breakers, instance
   health and load, queues, the waveless controller, worker heartbeats) and yields Prometheus metric
   families. ``wes exporter`` serves it; the API can serve the same (:func:`build_registry`,
   :func:`render`). A scrape costs a few pipelined round trips, O(series), never O(workflows).

Label values come only from bounded sets: definition names and step ids (operator-configured),
service and instance ids (configuration), and closed enums (outcome, status, state). Never an id.
"""

from __future__ import annotations

import bisect
import contextlib
import logging
import re
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import redis
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.utils import floatToGoString

from engine.persistence.keys import Keys

log = logging.getLogger(__name__)

# ====================================================================== buckets
# Every SLA target (seed) and every bar of ours (PRODUCT.md) is an exact bucket bound, so compliance
# is a ratio of two counters: rate(..._bucket{le="<target>"}) / rate(..._count).
FAST_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
"""Engine-side latencies: persistence, event publishing, overheads, workflow start (100 µs .. 10 s)."""
CALL_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
"""A step's or a compensation's action (a handler or a service call): 1 ms .. 5 min."""
LONG_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0)
"""Whole sagas and whole compensations: 10 ms .. 2 h (the default workflow deadline is 30 min)."""

# ====================================================================== label values
WORKFLOW_OUTCOMES = ("completed", "compensated")
STEP_OUTCOMES = ("completed", "failed", "retried", "recovered")
COMPENSATION_OUTCOMES = ("compensated", "failed", "retried", "parked")
WORKFLOW_STATUSES = (
    "CREATED", "RUNNING", "PAUSED", "COMPLETED", "FAILED", "TIMEOUT", "COMPENSATING", "COMPENSATED", "CANCELLED",
)  # fmt: skip
BREAKER_STATES = ("CLOSED", "OPEN", "HALF_OPEN")
FORCED_MODES = ("OPEN", "CLOSED")
CALL_OUTCOMES = ("ok", "failed")
QUEUES = ("runnable", "dispatch_jobs", "intake")
WAVELESS_MODES = ("fixed", "waveless")
WAVELESS_OUTCOMES = ("accepted", "released", "rejected")
WAVELESS_LIMITS = ("batch", "rate", "headroom", "wave", "idle")
DEADLINE_STATUSES = ("RUNNING", "PAUSED")
"""Statuses in which the workflow deadline applies (the engine times them out at it)."""


# ====================================================================== metric definitions
@dataclass(frozen=True)
class HistogramSpec:
    name: str
    help: str
    labels: tuple[str, ...]
    buckets: tuple[float, ...]


@dataclass(frozen=True)
class CounterSpec:
    name: str
    help: str
    labels: tuple[str, ...]
    outcomes: tuple[str, ...] = ()
    """Values of the last label (``outcome``) to pre-initialise at zero."""


HISTOGRAMS: dict[str, HistogramSpec] = {
    # key: the sample name the saga service records (engine/saga/service.py, engine/stats.py)
    "workflow_start": HistogramSpec(
        "wes_workflow_start_seconds",
        "Workflow start: validate the input, persist the instance with its first event, make it runnable "
        "(SLA: seed < 1 s, ours p99 < 10 ms).",
        ("workflow_type",),
        FAST_BUCKETS,
    ),
    "step_execution": HistogramSpec(
        "wes_step_execution_seconds",
        "A step attempt's action: the handler or service call, as the worker saw it (SLA: seed < 30 s).",
        ("workflow_type", "step"),
        CALL_BUCKETS,
    ),
    "step_overhead": HistogramSpec(
        "wes_step_overhead_seconds",
        "Engine time spent per step before its action runs: decide, record, persist (ours: p99 < 2 ms).",
        ("workflow_type",),
        FAST_BUCKETS,
    ),
    "compensation_execution": HistogramSpec(
        "wes_compensation_execution_seconds",
        "A compensation attempt's action (undo, alternative): handler or service call (SLA: seed < 60 s).",
        ("workflow_type", "step"),
        CALL_BUCKETS,
    ),
    "compensation_overhead": HistogramSpec(
        "wes_compensation_overhead_seconds",
        "Engine time spent per compensation before its action runs (ours: p99 < 2 ms).",
        ("workflow_type",),
        FAST_BUCKETS,
    ),
    "compensation_duration": HistogramSpec(
        "wes_compensation_duration_seconds",
        "A saga's whole compensation: from CompensationStarted to WorkflowCompensated.",
        ("workflow_type",),
        LONG_BUCKETS,
    ),
    "state_persistence": HistogramSpec(
        "wes_state_persistence_seconds",
        "Round trip of a state commit (one Lua script: version check, events, snapshot, indexes), timed on "
        "one commit in eight (SLA: seed < 100 ms, ours p99 < 2 ms).",
        (),
        FAST_BUCKETS,
    ),
    "event_publish": HistogramSpec(
        "wes_event_publish_seconds",
        "Event publishing: round trip of the timed commits that carry events; they are appended to the "
        "workflow's stream and the global feed in that same atomic call (SLA: seed < 50 ms, ours p99 < 1 ms).",
        (),
        FAST_BUCKETS,
    ),
    "workflow_duration": HistogramSpec(
        "wes_workflow_duration_seconds",
        "A saga from creation to its end, by outcome.",
        ("workflow_type", "outcome"),
        LONG_BUCKETS,
    ),
}

COUNTERS: dict[str, CounterSpec] = {
    # key: the first field of the counter name the saga service increments ("steps|<type>|<step>|<outcome>")
    "workflows_started": CounterSpec("wes_workflows_started_total", "Workflows started.", ("workflow_type",)),
    "workflows_finished": CounterSpec(
        "wes_workflows_finished_total",
        "Workflows that ended, by outcome (completed, or compensated after a failure, timeout or cancel).",
        ("workflow_type", "outcome"),
        WORKFLOW_OUTCOMES,
    ),
    "steps": CounterSpec(
        "wes_steps_total",
        "Step attempts by outcome: completed, failed (final), retried (failed, will retry), recovered "
        "(re-run after a worker died mid-step).",
        ("workflow_type", "step", "outcome"),
        STEP_OUTCOMES,
    ),
    "compensations_started": CounterSpec(
        "wes_compensations_started_total", "Sagas that began compensating (backward recovery).", ("workflow_type",)
    ),
    "compensations": CounterSpec(
        "wes_compensation_actions_total",
        "Compensation attempts by outcome: compensated, failed (final), retried, parked (MANUAL).",
        ("workflow_type", "outcome"),
        COMPENSATION_OUTCOMES,
    ),
    "compensation_timeouts": CounterSpec(
        "wes_compensation_timeouts_total",
        "Compensations that ran past their budget (2x the forward time).",
        ("workflow_type",),
    ),
    "workflows_timed_out": CounterSpec(
        "wes_workflows_timed_out_total", "Workflows that hit their deadline.", ("workflow_type",)
    ),
}


@dataclass(frozen=True)
class SlaTarget:
    """One row of PRODUCT.md's SLA table: the histogram whose bucket at the seed's target makes
    compliance a ratio, the SLO on it, and our tighter bar (a bucket too: p99 <= bar)."""

    sli: str
    what: str
    metric: str
    seconds: float
    objective: float
    bar_metric: str
    bar_seconds: float

    @property
    def le(self) -> str:
        return floatToGoString(self.seconds)

    @property
    def bar_le(self) -> str:
        return floatToGoString(self.bar_seconds)


SLA_TARGETS = (
    SlaTarget("workflow_start", "workflow start", "wes_workflow_start_seconds", 1.0, 0.999,
              "wes_workflow_start_seconds", 0.01),
    SlaTarget("step_execution", "step execution", "wes_step_execution_seconds", 30.0, 0.999,
              "wes_step_overhead_seconds", 0.002),
    SlaTarget("compensation", "compensation", "wes_compensation_execution_seconds", 60.0, 0.999,
              "wes_compensation_overhead_seconds", 0.002),
    SlaTarget("state_persistence", "state persistence", "wes_state_persistence_seconds", 0.1, 0.999,
              "wes_state_persistence_seconds", 0.002),
    SlaTarget("event_publishing", "event publishing", "wes_event_publish_seconds", 0.05, 0.999,
              "wes_event_publish_seconds", 0.001),
)  # fmt: skip
BAR_QUANTILE = 0.99
"""Our bars are p99s: p99 <= bar  <=>  at least 99 % of observations in the bucket at the bar."""
SAGA_SUCCESS_OBJECTIVE = 0.99
"""SLO on sagas that end COMPLETED rather than compensated (the saga success rate)."""

WORKER_ALIVE_S = 15.0
"""A worker whose last heartbeat is older than this is not counted alive."""
DEADLINE_SCAN_LIMIT = 100
"""Most RUNNING/PAUSED workflows (oldest first) whose deadline one scrape looks at."""
DEFINITIONS_CACHE_S = 10.0
_SAFE_LABEL = re.compile(r"[A-Za-z0-9_.:-]{1,64}")


def _le(bound: float) -> str:
    return floatToGoString(bound)


# ====================================================================== recorder (workers, clients)
class MetricsRecorder:
    """The :class:`engine.stats.StatsRecorder` sink: folds samples into fixed-bucket histograms and
    counters, and adds them to the shared cumulative hash in Redis at each flush."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._buckets: dict[tuple[str, tuple[str, ...]], list[int]] = {}
        self._sums: dict[tuple[str, tuple[str, ...]], float] = defaultdict(float)
        self._counters: dict[str, int] = defaultdict(int)

    def fold(self, samples: Sequence[tuple[str, float, tuple[str, ...]]], counts: Sequence[tuple[str, int]]) -> None:
        with self._lock:
            buckets, sums = self._buckets, self._sums
            for name, seconds, labels in samples:
                spec = HISTOGRAMS.get(name)
                if spec is None or len(labels) != len(spec.labels):
                    continue
                key = (name, labels)
                row = buckets.get(key)
                if row is None:
                    row = buckets[key] = [0] * (len(spec.buckets) + 1)
                # le is inclusive: the first bound >= the value (past the last one: +Inf)
                row[bisect.bisect_left(spec.buckets, seconds)] += 1
                sums[key] += seconds
            for name, n in counts:
                # Only the families exported as Prometheus counters: others (the per-service call
                # outcomes of the stats rollups) stay out of the cumulative hash, where nothing reads them.
                if name.partition("|")[0] in COUNTERS:
                    self._counters[name] += n

    def drain(self) -> dict[str, int | float]:
        """What was folded since the last drain, as increments of the Redis hash's fields."""
        with self._lock:
            buckets, sums, counters = self._buckets, self._sums, self._counters
            self._buckets, self._sums, self._counters = {}, defaultdict(float), defaultdict(int)
        out: dict[str, int | float] = {}
        for (name, labels), row in buckets.items():
            base = "|".join((name, *labels))
            for i, n in enumerate(row):
                if n:
                    out[f"h|{base}|{i}"] = n
            out[f"s|{base}"] = sums[(name, labels)]
        for name, n in counters.items():
            if n:
                out[f"c|{name}"] = n
        return out

    def flush(self, client: redis.Redis, keys: Keys) -> int:
        """Add what was recorded to the cumulative hash (one pipelined round trip). Returns the number
        of fields written. On a Redis error the increments are lost, never applied twice."""
        increments = self.drain()
        if not increments:
            return 0
        pipe = client.pipeline(transaction=False)
        for field, value in increments.items():
            if isinstance(value, float):
                pipe.hincrbyfloat(keys.metrics, field, value)
            else:
                pipe.hincrby(keys.metrics, field, value)
        pipe.execute()
        return len(increments)


def recorder_for(enabled: bool) -> MetricsRecorder | None:
    return MetricsRecorder() if enabled else None


# ====================================================================== collector (scrape time)
@dataclass
class _Known:
    """Label values known in advance, pre-initialised at zero so alerts never see "no data"."""

    workflow_types: dict[str, list[str]]
    """Workflow type -> step ids, from the stored definitions (every version)."""
    min_timeout_s: float
    at: float


class EngineCollector:
    """A prometheus_client custom collector over the engine's Redis (one key prefix)."""

    def __init__(self, client: redis.Redis, prefix: str, clock: Callable[[], float] = time.time):
        self.r = client
        self.keys = Keys(prefix)
        self.clock = clock
        self._known: _Known | None = None
        self._errors = 0

    def describe(self) -> Iterable[Metric]:
        return []  # no fixed set: the families depend on what is configured

    def collect(self) -> Iterator[Metric]:
        started = time.perf_counter()
        try:
            families = list(self._families())
            up = 1.0
        except (redis.RedisError, OSError) as exc:
            log.warning("collecting engine metrics failed: %s", exc)
            self._errors += 1
            families, up = [], 0.0
        yield from families
        yield _gauge("wes_redis_up", "1 if the exporter could read the engine's Redis at this scrape.", up)
        errors = CounterMetricFamily("wes_exporter_errors", "Scrapes that could not read Redis.")
        errors.add_metric([], self._errors)
        yield errors
        yield _gauge(
            "wes_exporter_collect_seconds", "Time this scrape spent reading Redis.", time.perf_counter() - started
        )

    # ------------------------------------------------------------------ reads
    def known(self) -> _Known:
        now = time.monotonic()
        if self._known is not None and now - self._known.at < DEFINITIONS_CACHE_S:
            return self._known
        types: dict[str, list[str]] = {}
        timeouts: list[float] = []
        for raw in self.r.hvals(self.keys.definitions):
            try:
                data = orjson.loads(raw)
                name = str(data["name"])
                steps = [str(s["id"]) for s in data.get("steps", [])]
            except (ValueError, KeyError, TypeError):
                continue
            if not _SAFE_LABEL.fullmatch(name):
                continue
            merged = types.setdefault(name, [])
            merged.extend(s for s in steps if s not in merged and _SAFE_LABEL.fullmatch(s))
            with contextlib.suppress(TypeError, ValueError):
                timeouts.append(float(data.get("timeout") or 0))
        positive = [t for t in timeouts if t > 0]
        self._known = _Known(types, min(positive) if positive else 0.0, now)
        return self._known

    def _families(self) -> Iterator[Metric]:
        k = self.keys
        now = self.clock()
        now_ms = int(now * 1000)
        known = self.known()
        pipe = self.r.pipeline(transaction=False)
        pipe.hgetall(k.metrics)
        for status in WORKFLOW_STATUSES:
            pipe.zcard(k.by_status(status))
        pipe.zcard(k.attention)
        pipe.zcount(k.sched, "-inf", now_ms)
        pipe.zcard(k.sched)
        pipe.zrange(k.sched, 0, 0, withscores=True)
        pipe.llen(k.rq_queue)
        pipe.get(k.orders_depth)
        pipe.hgetall(k.waveless_state)
        pipe.zrevrange(k.workers, 0, 0, withscores=True)
        pipe.zcount(k.workers, int((now - WORKER_ALIVE_S) * 1000), "+inf")
        pipe.hgetall(k.services)
        cutoff_ms = int((now - known.min_timeout_s) * 1000)
        for status in DEADLINE_STATUSES:
            pipe.zrangebyscore(k.by_status(status), "-inf", cutoff_ms, start=0, num=DEADLINE_SCAN_LIMIT)
        replies = iter(pipe.execute())
        stored = next(replies)
        by_status = {status: int(next(replies)) for status in WORKFLOW_STATUSES}
        attention = int(next(replies))
        runnable = int(next(replies))
        scheduled = int(next(replies))
        oldest = next(replies)
        dispatch_jobs = int(next(replies))
        orders_depth = next(replies)
        waveless = next(replies)
        newest_worker = next(replies)
        workers_alive = int(next(replies))
        services = _services(next(replies))
        deadline_candidates = {status: next(replies) for status in DEADLINE_STATUSES}

        yield from self._recorded(stored, known)

        g = GaugeMetricFamily("wes_workflows", "Workflows by status (the status indexes).", labels=["status"])
        for status, n in by_status.items():
            g.add_metric([status], n)
        yield g
        yield _gauge(
            "wes_workflows_requires_attention",
            "Workflows that need an operator (failed or parked compensations, compensation past its budget).",
            attention,
        )
        yield self._past_deadline(deadline_candidates, now)
        intake = _int(orders_depth, _int(waveless.get("queue_depth"), 0))
        q = GaugeMetricFamily("wes_queue_depth", "Work waiting, by queue: runnable sagas due and not claimed by a "
                              "worker, queued RQ dispatch jobs, orders waiting in the waveless intake.",
                              labels=["queue"])  # fmt: skip
        for name, n in (("runnable", runnable), ("dispatch_jobs", dispatch_jobs), ("intake", intake)):
            q.add_metric([name], n)
        yield q
        oldest_due = float(oldest[0][1]) / 1000.0 if oldest and float(oldest[0][1]) <= now_ms else now
        yield _gauge(
            "wes_runnable_oldest_age_seconds",
            "How long the oldest runnable saga has waited for a worker (0 when none waits).",
            max(0.0, now - oldest_due),
        )
        yield _gauge(
            "wes_scheduled_workflows", "Live workflows on the schedule (runnable, waiting, or held).", scheduled
        )
        yield _gauge("wes_workers_alive", f"Worker processes with a heartbeat in the last {WORKER_ALIVE_S:g} s.",
                     workers_alive)  # fmt: skip
        age = now - float(newest_worker[0][1]) / 1000.0 if newest_worker else float("inf")
        yield _gauge(
            "wes_worker_heartbeat_age_seconds",
            "Age of the freshest worker heartbeat (+Inf when no worker ever registered).",
            max(0.0, age),
        )
        yield from self._services(services, now_ms)
        yield from _waveless(waveless)
        yield _gauge("wes_exporter_scrape_timestamp_seconds", "When this scrape read Redis.", now)

    def _recorded(self, stored: Mapping[str, str], known: _Known) -> Iterator[Metric]:
        """The cumulative counters and histograms workers and clients flushed, with every known label
        combination present (zero when nothing was recorded yet)."""
        counters: dict[str, dict[tuple[str, ...], float]] = {name: {} for name in COUNTERS}
        hist: dict[str, dict[tuple[str, ...], list[int]]] = {name: {} for name in HISTOGRAMS}
        sums: dict[str, dict[tuple[str, ...], float]] = {name: {} for name in HISTOGRAMS}
        for field, value in stored.items():
            kind, _, rest = field.partition("|")
            parts = rest.split("|")
            if kind == "c":
                spec_c = COUNTERS.get(parts[0])
                if spec_c is not None and len(parts) == 1 + len(spec_c.labels):
                    counters[parts[0]][tuple(parts[1:])] = _float(value)
            elif kind == "h":
                spec_h = HISTOGRAMS.get(parts[0])
                if spec_h is None or len(parts) != 2 + len(spec_h.labels):
                    continue
                index = _int(parts[-1], -1)
                if not 0 <= index <= len(spec_h.buckets):
                    continue
                row = hist[parts[0]].setdefault(tuple(parts[1:-1]), [0] * (len(spec_h.buckets) + 1))
                row[index] += _int(value, 0)
            elif kind == "s":
                spec_h = HISTOGRAMS.get(parts[0])
                if spec_h is not None and len(parts) == 1 + len(spec_h.labels):
                    sums[parts[0]][tuple(parts[1:])] = _float(value)

        types = known.workflow_types
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
                    buckets.append((_le(bound), cumulative))
                family_h.add_metric(list(labels), buckets, sums[name].get(labels, 0.0))
            yield family_h

    def _past_deadline(self, candidates: Mapping[str, list[str]], now: float) -> Metric:
        g = GaugeMetricFamily(
            "wes_workflows_past_deadline",
            f"Workflows still RUNNING or PAUSED after their deadline (the engine should have timed them out): "
            f"stuck. Looks at the {DEADLINE_SCAN_LIMIT} oldest of each status.",
            labels=["status"],
        )
        ids = [(status, wid) for status in DEADLINE_STATUSES for wid in candidates[status]]
        counts = dict.fromkeys(DEADLINE_STATUSES, 0)
        if ids:
            pipe = self.r.pipeline(transaction=False)
            for _, wid in ids:
                pipe.hmget(self.keys.state(wid), "status", "snap")
            for (status, _), (current, snap) in zip(ids, pipe.execute(), strict=True):
                if current != status or not snap:
                    continue
                try:
                    deadline = float(orjson.loads(snap)["time_constraints"]["deadline"])
                except (ValueError, KeyError, TypeError):
                    continue
                if 0 < deadline < now:
                    counts[status] += 1
        for status, n in counts.items():
            g.add_metric([status], n)
        return g

    def _services(self, services: Mapping[str, dict], now_ms: int) -> Iterator[Metric]:
        names = sorted(services)
        pipe = self.r.pipeline(transaction=False)
        for name in names:
            pipe.hgetall(self.keys.breaker(name))
            pipe.hgetall(self.keys.service_health(name))
            for inst in services[name]["instances"]:
                pipe.zcount(self.keys.in_flight(name, inst["id"]), now_ms, "+inf")
        replies = iter(pipe.execute()) if names else iter(())
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
        for name in names:
            cfg = services[name]
            breaker = next(replies)
            health = next(replies)
            current = breaker.get("state") or "CLOSED"
            if current == "OPEN" and _int(breaker.get("open_until"), 0) <= now_ms:
                current = "HALF_OPEN"  # admits a trial call at the next call
            mode = breaker.get("forced") or ""
            if mode == "OPEN":
                current = "OPEN"
            for s in BREAKER_STATES:
                state.add_metric([name, s], 1.0 if s == current else 0.0)
            for m in FORCED_MODES:
                forced.add_metric([name, m], 1.0 if m == mode else 0.0)
            trips.add_metric([name], _int(breaker.get("trips"), 0))
            total, failed = _int(breaker.get("calls"), 0), _int(breaker.get("failures"), 0)
            calls.add_metric([name, "ok"], max(total - failed, 0))
            calls.add_metric([name, "failed"], failed)
            target.add_metric([name], cfg["target_utilization"])
            for inst in cfg["instances"]:
                iid = inst["id"]
                n = int(next(replies))
                record = _json(health.get(iid))
                status = record.get("status", "UNKNOWN")
                up.add_metric([name, iid], 0.0 if status == "UNHEALTHY" else 1.0)
                cap = max(int(inst.get("capacity") or 1), 1)
                util.add_metric([name, iid], n / cap)
                inflight.add_metric([name, iid], n)
                capacity.add_metric([name, iid], cap)
                if record.get("latency_ms") is not None:
                    check.add_metric([name, iid], float(record["latency_ms"]) / 1000.0)
        yield from (state, forced, trips, calls, target, up, util, inflight, capacity, check)


def _services(raw: Mapping[str, str]) -> dict[str, dict]:
    """Endpoint configurations, read defensively (only what the metrics need)."""
    out = {}
    for name, text in raw.items():
        cfg = _json(text)
        if not _SAFE_LABEL.fullmatch(name):
            continue
        instances = [
            i for i in cfg.get("instances") or [] if isinstance(i, dict) and _SAFE_LABEL.fullmatch(str(i.get("id", "")))
        ]
        target = cfg.get("target_utilization")
        out[name] = {
            "instances": [{"id": str(i["id"]), "capacity": i.get("capacity") or 10} for i in instances],
            "target_utilization": float(target) if isinstance(target, int | float) else 0.85,
        }
    return out


def _waveless(state: Mapping[str, str]) -> Iterator[Metric]:
    """The waveless release controller's state hash (engine/persistence/waveless_store.py
    ``STATE_FIELDS``), read defensively: a missing hash or field reads as zero."""
    yield _gauge(
        "wes_waveless_batch_size", "Orders per release, at most, as last decided.", _float(state.get("batch_size"))
    )
    yield _gauge(
        "wes_waveless_release_rate_per_second",
        "Orders released per second, at most, as last decided.",
        _float(state.get("rate")),
    )
    yield _gauge(
        "wes_waveless_utilization_ratio",
        "Utilization the controller measured: max(worker, service) utilization.",
        _float(state.get("utilization")),
    )
    yield _gauge(
        "wes_waveless_target_utilization_ratio",
        "Utilization the controller aims at.",
        _float(state.get("target_utilization")) or 0.85,
    )
    orders = CounterMetricFamily(
        "wes_waveless_orders", "Orders through the intake: accepted, released (saga started), rejected.",
        labels=["outcome"],
    )  # fmt: skip
    for outcome in WAVELESS_OUTCOMES:
        orders.add_metric([outcome], _float(state.get(f"{outcome}_total")))
    yield orders
    yield _gauge(
        "wes_waveless_last_decision_timestamp_seconds",
        "When the controller last adjusted (0: never).",
        _float(state.get("updated_at")),
    )
    current = str(state.get("mode") or "")
    mode = GaugeMetricFamily("wes_waveless_mode", "1 for the release mode in force.", labels=["mode"])
    for m in sorted({*WAVELESS_MODES, current} if _SAFE_LABEL.fullmatch(current) else set(WAVELESS_MODES)):
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


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value)


def _json(raw: Any) -> dict:
    if not raw:
        return {}
    try:
        data = orjson.loads(raw)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _int(raw: Any, default: int) -> int:
    try:
        return int(float(raw))
    except (TypeError, ValueError):
        return default


def _float(raw: Any) -> float:
    try:
        value = float(raw)
    except (TypeError, ValueError):
        return 0.0
    return value if value == value else 0.0  # NaN reads as 0


# ====================================================================== exposition
def build_registry(client: redis.Redis, prefix: str) -> CollectorRegistry:
    """A registry holding only the engine's collector (no process metrics of the serving process:
    they would describe the exporter, not the engine). The API mounts the same for its /metrics."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(EngineCollector(client, prefix))
    return registry


def render(registry: CollectorRegistry) -> tuple[bytes, str]:
    """The text exposition and its content type, for any web framework's ``/metrics`` route."""
    return generate_latest(registry), CONTENT_TYPE_LATEST
