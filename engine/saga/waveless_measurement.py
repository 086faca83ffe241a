"""The load the waveless release controller reads (``engine.domain.waveless.SystemLoad``): the queue
depth, the sagas in flight, the live workers, the saga's services (highest instance utilization, open
breakers), and step latency p95 and throughput from the workers' stats rollups."""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Sequence

from engine.domain.definition import WorkflowDefinition
from engine.domain.waveless import SystemLoad
from engine.persistence.service_registry import ServiceNotFound, ServiceRegistry
from engine.persistence.stats_store import INTERVAL_S, StatsStore
from engine.persistence.waveless_store import FlowCounts, WavelessStore
from engine.settings import EngineSettings
from engine.stats import LogHistogram

WORKER_ALIVE_S = 5.0
"""A worker with a heartbeat this recent counts as live."""


class LatencyWindow:
    """Step execution p95 and sagas finished per second over the last ``window_s``, from the workers'
    per-interval stats rollups: each update reads the intervals the window touches and keeps what was
    added to them since the previous update."""

    def __init__(self, stats: StatsStore, window_s: float, metric: str = "step_execution"):
        self.stats = stats
        self.window_s = window_s
        self.metric = metric
        self._seen: dict[int, tuple[dict[int, int], int]] = {}
        self._deltas: deque[tuple[float, dict[int, int], int]] = deque()
        self._since: float | None = None

    def update(self, now: float) -> tuple[float | None, float | None]:
        first = int(now - self.window_s) // INTERVAL_S * INTERVAL_S
        last = int(now) // INTERVAL_S * INTERVAL_S
        added: dict[int, int] = defaultdict(int)
        finished = 0
        for start in range(first, last + 1, INTERVAL_S):
            hist, counters = self.stats.read(start, start)
            h = hist.get(self.metric)
            buckets = dict(h.buckets) if h is not None else {}
            done = sum(n for series, n in counters.items() if series.name == "workflows_finished")
            prev_buckets, prev_done = self._seen.get(start, ({}, 0))
            for b, n in buckets.items():
                if n > prev_buckets.get(b, 0):
                    added[b] += n - prev_buckets.get(b, 0)
            finished += max(0, done - prev_done)
            self._seen[start] = (buckets, done)
        for start in [s for s in self._seen if s < first]:
            del self._seen[start]
        if self._since is None:
            # The first read holds up to two intervals of history: good for latency, but its span is
            # unknown, so it is no throughput figure.
            self._since = now
            finished = 0
        self._deltas.append((now, added, finished))
        while self._deltas and self._deltas[0][0] < now - self.window_s:
            self._since = self._deltas.popleft()[0]
        merged: dict[int, int] = defaultdict(int)
        total = 0
        for _, d, f in self._deltas:
            for b, n in d.items():
                merged[b] += n
            total += f
        p95 = LogHistogram.from_counts(merged).quantile(0.95) if merged else None
        span = now - self._since
        return p95, (total / span if span >= 0.5 else None)


def services_called(definition: WorkflowDefinition) -> tuple[str, ...]:
    """The services a saga's steps and compensations call, in order of first use."""
    names: list[str] = []
    for step in definition.steps:
        refs = [step.action]
        if step.compensation is not None:
            refs += [step.compensation.action, step.compensation.alternative]
        for ref in refs:
            service = getattr(ref, "service", None)
            if service and service not in names:
                names.append(service)
    return tuple(names)


class LoadMeter:
    """Measures the load for the controller (one per controller: the latency window keeps history)."""

    def __init__(self, store: WavelessStore, services: ServiceRegistry, stats: StatsStore, settings: EngineSettings):
        self.store = store
        self.services = services
        self.worker_slots = settings.waveless_worker_slots or settings.max_in_flight
        """Sagas one worker runs at once (its ``max_in_flight``): beyond that per worker, sagas queue."""
        self._latency = LatencyWindow(stats, settings.waveless_latency_window_seconds)
        self._saga_services: tuple[str, tuple[str, ...]] = ("", ())

    def counts(self, now: float, state_fields: Sequence[str] = ()) -> FlowCounts:
        """Queue depth, sagas in flight and live workers at ``now`` (and ``state_fields``), in one round trip."""
        return self.store.flow_counts(int((now - WORKER_ALIVE_S) * 1000), state_fields)

    def measure(self, now: float, definition: WorkflowDefinition | None, batch_limited: bool) -> SystemLoad:
        """The load the law reads; ``definition`` is the saga orders start (None: unknown, so no services)."""
        counts = self.counts(now)
        service_util, open_breakers = self.service_load(definition) if definition is not None else (0.0, ())
        p95, throughput = self._latency.update(now)
        return SystemLoad(
            queue_depth=counts.queue_depth,
            in_flight=counts.in_flight,
            live_workers=max(1, counts.live_workers),
            worker_slots=self.worker_slots,
            service_utilization=service_util,
            latency_p95_s=p95,
            open_breakers=open_breakers,
            batch_limited=batch_limited,
            throughput=throughput,
        )

    def service_load(self, definition: WorkflowDefinition) -> tuple[float, tuple[str, ...]]:
        """The highest utilization over the healthy instances of the services the saga calls, and those
        of them whose breaker is open (or forced open)."""
        util = 0.0
        open_breakers = []
        for name in self._services_of(definition):
            try:
                endpoint = self.services.endpoint(name)
                for load in self.services.loads(endpoint):
                    if load.healthy:
                        util = max(util, load.utilization)
                breaker = self.services.get_circuit_breaker_state(name)
            except ServiceNotFound:
                continue
            if breaker["state"] == "OPEN" or breaker.get("forced") == "OPEN":
                open_breakers.append(name)
        return util, tuple(open_breakers)

    def _services_of(self, definition: WorkflowDefinition) -> tuple[str, ...]:
        if self._saga_services[0] != definition.definition_id:
            self._saga_services = (definition.definition_id, services_called(definition))
        return self._saga_services[1]
