"""The scrape-time collector behind ``/metrics``: reads the engine's state through its stores (never
Redis directly) and yields Prometheus metric families. ``wes exporter`` serves it; the API can serve
the same (:func:`build_registry`, :func:`render`)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from engine.errors import DefinitionError
from engine.metrics import families
from engine.metrics.catalogue import DEADLINE_STATUSES, WORKFLOW_STATUSES
from engine.metrics.families import SAFE_LABEL, Instance, Service, gauge
from engine.persistence.errors import StoreError

if TYPE_CHECKING:
    from engine.persistence.stores import Stores

log = logging.getLogger(__name__)

WORKER_ALIVE_S = 15.0
"""A worker whose last heartbeat is older than this is not counted alive."""
DEADLINE_SCAN_LIMIT = 100
"""Most RUNNING/PAUSED workflows (oldest first) whose deadline one scrape looks at."""
DEFINITIONS_CACHE_S = 10.0


@dataclass
class _Known:
    """Label values known in advance, pre-initialised at zero so alerts never see "no data"."""

    workflow_types: dict[str, list[str]]
    """Workflow type -> step ids, from the stored definitions (every version)."""
    min_timeout_s: float
    at: float


class EngineCollector:
    """A prometheus_client custom collector over one engine's stores (one Redis, one key prefix)."""

    def __init__(self, stores: Stores, clock: Callable[[], float] = time.time):
        self.stores = stores
        self.clock = clock
        self._known: _Known | None = None
        self._errors = 0

    def describe(self) -> Iterable[Metric]:
        return []  # no fixed set: the families depend on what is configured

    def collect(self) -> Iterator[Metric]:
        started = time.perf_counter()
        try:
            found = list(self._families())
            up = 1.0
        except (StoreError, OSError) as exc:
            log.warning("collecting engine metrics failed: %s", exc)
            self._errors += 1
            found, up = [], 0.0
        yield from found
        yield gauge("wes_redis_up", "1 if the exporter could read the engine's Redis at this scrape.", up)
        errors = CounterMetricFamily("wes_exporter_errors", "Scrapes that could not read Redis.")
        errors.add_metric([], self._errors)
        yield errors
        yield gauge(
            "wes_exporter_collect_seconds", "Time this scrape spent reading Redis.", time.perf_counter() - started
        )

    # ------------------------------------------------------------------ reads
    def known(self) -> _Known:
        now = time.monotonic()
        if self._known is not None and now - self._known.at < DEFINITIONS_CACHE_S:
            return self._known
        try:
            definitions = self.stores.definitions.all_definitions()
        except DefinitionError as exc:  # a stored definition this version cannot read: no pre-initialised labels
            log.warning("reading the definitions for metric labels failed: %s", exc)
            definitions = []
        types: dict[str, list[str]] = {}
        timeouts: list[float] = []
        for definition in definitions:
            if not SAFE_LABEL.fullmatch(definition.name):
                continue
            merged = types.setdefault(definition.name, [])
            merged.extend(s.id for s in definition.steps if s.id not in merged and SAFE_LABEL.fullmatch(s.id))
            timeouts.append(definition.timeout)
        positive = [t for t in timeouts if t > 0]
        self._known = _Known(types, min(positive) if positive else 0.0, now)
        return self._known

    def configured_services(self) -> list[Service]:
        """The endpoints as configured, sorted by name, with the instances whose id is a safe label."""
        try:
            endpoints = self.stores.services.endpoints()
        except DefinitionError as exc:
            log.warning("reading the service endpoints for metrics failed: %s", exc)
            return []
        return [
            Service(
                name,
                e.target_utilization,
                tuple(Instance(i.id, max(i.capacity, 1)) for i in e.instances if SAFE_LABEL.fullmatch(i.id)),
            )
            for name, e in sorted(endpoints.items())
            if SAFE_LABEL.fullmatch(name)
        ]

    def _families(self) -> Iterator[Metric]:
        stores = self.stores
        now = self.clock()
        now_ms = int(now * 1000)
        known = self.known()
        totals = stores.metrics.totals()
        by_status = stores.index.count_by_status()
        backlog = stores.metrics.backlog(now_ms)
        dispatch_jobs = len(stores.dispatch_queue)
        intake = stores.waveless.depth()
        waveless = stores.waveless.read_state()
        last_beat = stores.workers.last_beat()
        workers_alive = len(stores.workers.alive(int((now - WORKER_ALIVE_S) * 1000)))
        services = self.configured_services()
        readings = stores.metrics.services({s.name: [i.id for i in s.instances] for s in services}, now_ms)
        cutoff_ms = int((now - known.min_timeout_s) * 1000)
        deadlines = stores.metrics.deadlines(DEADLINE_STATUSES, cutoff_ms, DEADLINE_SCAN_LIMIT)

        yield from families.recorded(totals, known.workflow_types)
        g = GaugeMetricFamily("wes_workflows", "Workflows by status (the status indexes).", labels=["status"])
        for status in WORKFLOW_STATUSES:
            g.add_metric([status], by_status.get(status, 0))
        yield g
        yield gauge(
            "wes_workflows_requires_attention",
            "Workflows that need an operator (failed or parked compensations, compensation past its budget).",
            backlog.attention,
        )
        yield _past_deadline(deadlines, now)
        q = GaugeMetricFamily("wes_queue_depth", "Work waiting, by queue: runnable sagas (fresh starts and due "
                              "ones) not claimed by a worker, queued RQ dispatch jobs, orders waiting in the "
                              "waveless intake.", labels=["queue"])  # fmt: skip
        for name, n in (("runnable", backlog.runnable), ("dispatch_jobs", dispatch_jobs), ("intake", intake)):
            q.add_metric([name], n)
        yield q
        oldest = backlog.oldest_due_ms
        oldest_due = oldest / 1000.0 if oldest is not None and oldest <= now_ms else now
        yield gauge(
            "wes_runnable_oldest_age_seconds",
            "How long the oldest runnable saga has waited for a worker (0 when none waits).",
            max(0.0, now - oldest_due),
        )
        yield gauge(
            "wes_scheduled_workflows", "Live workflows on the schedule (runnable, waiting, or held).", backlog.scheduled
        )
        yield gauge("wes_workers_alive", f"Worker processes with a heartbeat in the last {WORKER_ALIVE_S:g} s.",
                    workers_alive)  # fmt: skip
        age = now - last_beat / 1000.0 if last_beat is not None else float("inf")
        yield gauge(
            "wes_worker_heartbeat_age_seconds",
            "Age of the freshest worker heartbeat (+Inf when no worker ever registered).",
            max(0.0, age),
        )
        yield from families.services(services, readings, now_ms)
        yield from families.waveless(waveless)
        yield gauge("wes_exporter_scrape_timestamp_seconds", "When this scrape read Redis.", now)


def _past_deadline(deadlines: Mapping[str, list[float]], now: float) -> Metric:
    g = GaugeMetricFamily(
        "wes_workflows_past_deadline",
        f"Workflows still RUNNING or PAUSED after their deadline (the engine should have timed them out): "
        f"stuck. Looks at the {DEADLINE_SCAN_LIMIT} oldest of each status.",
        labels=["status"],
    )
    for status in DEADLINE_STATUSES:
        g.add_metric([status], sum(1 for deadline in deadlines.get(status, ()) if 0 < deadline < now))
    return g


# ====================================================================== exposition
def build_registry(stores: Stores) -> CollectorRegistry:
    """A registry holding only the engine's collector (no process metrics of the serving process:
    they would describe the exporter, not the engine). The API mounts the same for its /metrics."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(EngineCollector(stores))
    return registry


def render(registry: CollectorRegistry) -> tuple[bytes, str]:
    """The text exposition and its content type, for any web framework's ``/metrics`` route."""
    return generate_latest(registry), CONTENT_TYPE_LATEST
