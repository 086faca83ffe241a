"""WavelessProcessingService: orders flow in continuously and are released into sagas in batches sized
from the measured load (the seed's WavelessProcessingService).

Every worker process runs :meth:`WavelessProcessingService.run` on a background thread; one of them
holds the leader lock (``waveless_leader``, renewed every tick, TTL ``waveless_leader_ttl_seconds``) and
releases. When the leader dies, another worker takes the lock once it expires, claims the orders the
dead one had read and not acknowledged (XAUTOCLAIM), and releases them: the start's idempotency key
``order:<order id>`` finds a saga already started instead of starting a second one.

The leader's loop (:meth:`process_continuous_flow` is one step of it):

- every tick (``waveless_tick_seconds``): renew the lock, read the operator's settings (mode, wave
  size and interval, pins) from ``waveless_state``, count the sagas in flight and the live workers;
- every adjustment (``waveless_adjust_seconds``): :meth:`measure` the load and
  :meth:`adjust_processing_rate` (the law of ``engine.domain.waveless``), writing the state and, when
  something changed, a decision;
- release: ``fixed``: when a wave is due, up to ``wave_size`` orders; ``waveless``: up to
  ``release_quota`` orders (batch size, rate, headroom), waiting on the intake when it is empty so an
  arriving order is released at once.

A release reads entries through the consumer group, starts one saga per order (correlation id = order
id, the arrival time in the ``x-order-arrived-at`` header), then acknowledges them and takes them off
the queue depth in one script. An order whose input the saga refuses is acknowledged as rejected and
recorded as a decision; any other failure leaves the orders pending to be released again.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
import uuid
from collections import defaultdict, deque
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import orjson
import redis

from engine.domain.definition import WorkflowDefinition
from engine.domain.status import WorkflowStatus
from engine.domain.waveless import (
    ControlParams,
    ControlState,
    Mode,
    OrderPattern,
    Pins,
    ProcessingStrategy,
    SystemLoad,
    TokenBucket,
    next_wave_at,
    release_quota,
    wave_due,
)
from engine.domain.waveless import adjust_processing_rate as adjust_law
from engine.domain.waveless import calculate_dynamic_batch_size as batch_law
from engine.errors import EngineError, InputValidationError
from engine.persistence.service_registry import ServiceNotFound, ServiceRegistry
from engine.persistence.stats_store import INTERVAL_S, StatsStore
from engine.persistence.waveless_store import STATE_FIELDS, IntakeEntry, WavelessStore
from engine.stats import LogHistogram

if TYPE_CHECKING:
    from engine.persistence.definition_repository import DefinitionRepository
    from engine.persistence.workflow_repository import WorkflowRepository
    from engine.saga.starting import WorkflowStarter
    from engine.settings import EngineSettings
    from engine.wiring import Engine

log = logging.getLogger(__name__)

MAX_RELEASE = 500
"""Orders read per release at most: a bigger wave takes several releases."""
WORKER_ALIVE_S = 5.0
"""A worker with a heartbeat this recent counts as live."""
DEFINITION_REFRESH_S = 2.0
IDLE_ADJUST_FACTOR = 4
"""With nothing waiting, released or in flight, the load is measured this many times less often."""
RECLAIM_EVERY_S = 5.0
"""How often the leader claims orders a former leader still holds (beyond the claim at takeover)."""
ERROR_BACKOFF_S = 1.0
ARRIVED_HEADER = "x-order-arrived-at"
IN_FLIGHT = (WorkflowStatus.CREATED, WorkflowStatus.RUNNING, WorkflowStatus.COMPENSATING)


def new_order_id() -> str:
    return f"o-{uuid.uuid4().hex[:12]}"


def control_params(settings: EngineSettings) -> ControlParams:
    return ControlParams(
        min_batch=settings.waveless_min_batch,
        max_batch=settings.waveless_max_batch,
        max_rate=settings.waveless_max_rate,
        target_utilization=settings.waveless_target_utilization,
        latency_sla_s=settings.waveless_latency_sla_ms / 1000.0,
        increase=settings.waveless_increase,
        decrease=settings.waveless_decrease,
        breaker_decrease=settings.waveless_breaker_decrease,
        release_interval_s=settings.waveless_tick_seconds,
    ).validate()


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
            done = sum(n for name, n in counters.items() if name.startswith("workflows_finished|"))
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


class WavelessProcessingService:
    """The release controller (run by the leader) and the operator's side of it (any process)."""

    def __init__(
        self,
        *,
        r: redis.Redis,
        settings: EngineSettings,
        repo: WorkflowRepository,
        definitions: DefinitionRepository,
        starter: WorkflowStarter,
        services: ServiceRegistry,
        stats_store: StatsStore,
        name: str,
        stop: threading.Event | None = None,
        draining: threading.Event | None = None,
        clock: Callable[[], float] = time.time,
    ):
        self.r = r
        self.settings = settings
        self.repo = repo
        self.definitions = definitions
        self.starter = starter
        self.services = services
        self.name = name
        self.stop = stop or threading.Event()
        self.draining = draining
        self.clock = clock
        self.store = WavelessStore(r, settings)
        self.params = control_params(settings)
        self.is_leader = False
        initial = self.params.clamp_batch(settings.waveless_initial_batch)
        self._control = ControlState(initial, self.params.rate_for(initial), "initial batch size", "hold")
        self._bucket = TokenBucket(self._control.rate, self._control.batch_size, clock())
        self._latency = LatencyWindow(stats_store, settings.waveless_latency_window_seconds)
        self._ttl_ms = max(100, int(settings.waveless_leader_ttl_seconds * 1000))
        self.worker_slots = settings.waveless_worker_slots or settings.claim_batch
        """Sagas one worker advances at once: a dispatch job claims up to ``claim_batch`` due sagas and
        runs them interleaved, so beyond that per worker, sagas queue (and a smaller in-flight cap
        would let one worker's claim take them all while another worker idles)."""
        self._mode: Mode | None = None
        self._pins = Pins()
        self._cfg: dict[str, str] = {}
        self._in_flight = 0
        self._live_workers = 1
        self._released_since_count = 0
        self._released_since_adjust = 0
        self._batch_limited = False
        self._limit = "idle"
        self._wave_remaining = 0
        self._pending_maybe = True
        self._next_housekeeping = 0.0
        self._next_adjust = 0.0
        self._next_reclaim = 0.0
        self._last_recorded: tuple | None = None
        self._definition_cache: tuple[float, WorkflowDefinition | None] = (0.0, None)
        self._saga_services: tuple[str, tuple[str, ...]] = ("", ())
        self._last_error = ""
        self._retry_at = 0.0

    @classmethod
    def from_engine(
        cls,
        engine: Engine,
        name: str | None = None,
        stop: threading.Event | None = None,
        draining: threading.Event | None = None,
    ) -> WavelessProcessingService:
        """The controller of a worker (``stop``/``draining`` its events) or an operator's view of it."""
        stores = engine.stores
        return cls(
            r=stores.client,
            settings=engine.settings,
            repo=stores.workflows,
            definitions=stores.definitions,
            starter=engine.starter,
            services=stores.services,
            stats_store=stores.stats,
            name=name or f"client:{os.getpid()}:{uuid.uuid4().hex[:6]}",
            stop=stop,
            draining=draining,
        )

    # ================================================================== operators
    def enable_waveless_mode(self, strategy: ProcessingStrategy | str, *, by: str = "") -> dict[str, Any]:
        """Switch between fixed waves and waveless release at runtime. Orders stay on the intake until
        released, so nothing is lost or released twice by a switch; the leader applies it within a tick."""
        if isinstance(strategy, str):
            strategy = ProcessingStrategy.parse(strategy)
        strategy.validate()
        now = self.clock()
        old = self.store.read_state().get("mode") or self.settings.waveless_mode
        fields: dict[str, Any] = {"mode": strategy.mode.value, "mode_changed_at": now, "mode_changed_by": by}
        reason = f"operator: {old} -> {strategy.mode.value}"
        if strategy.mode is Mode.FIXED:
            fields |= {"wave_size": strategy.wave_size, "wave_interval_s": strategy.wave_interval_s, "wave_anchor": now}
            reason += f" ({strategy.wave_size} orders every {strategy.wave_interval_s:g} s)"
        self.store.write(fields, {"at": now, "kind": "mode", "mode": strategy.mode.value, "reason": reason, "by": by})
        return self.status()

    def pin(self, *, batch: int | None = None, rate: float | None = None, by: str = "") -> dict[str, Any]:
        """Hold the batch size or the rate at an operator's value (within the bounds) until unpinned."""
        if batch is None and rate is None:
            raise ValueError("pin the batch size or the rate")
        pins = Pins(batch, rate).validate(self.params)
        now = self.clock()
        what = f"batch {pins.batch}" if pins.batch is not None else f"rate {pins.rate:g}/s"
        self.store.write(
            {"pinned_batch": pins.batch, "pinned_rate": pins.rate, "mode_changed_at": now, "mode_changed_by": by},
            {"at": now, "kind": "pin", "reason": f"operator pinned {what}", "by": by},
        )
        return self.status()

    def unpin(self, *, by: str = "") -> dict[str, Any]:
        """Back to the adaptive law."""
        now = self.clock()
        self.store.write(
            {"pinned_batch": None, "pinned_rate": None, "mode_changed_at": now, "mode_changed_by": by},
            {"at": now, "kind": "unpin", "reason": "operator unpinned: adaptive again", "by": by},
        )
        return self.status()

    def submit(self, orders: Sequence[Mapping[str, Any]], now: float | None = None) -> list[dict[str, str]]:
        """Accept orders on the intake (each is checked against the saga's input rules first; an order
        without ``order_id`` gets one). Returns their order and entry ids."""
        definition = self.definition(fresh=True)
        arrived = self.clock() if now is None else now
        prepared = []
        for order in orders:
            if not isinstance(order, Mapping):
                raise InputValidationError([f"an order must be a JSON object, got {type(order).__name__}"])
            data = dict(order)
            order_id = data.get("order_id")
            if order_id in (None, ""):
                order_id = new_order_id()
            data["order_id"] = str(order_id)
            definition.prepare_input(data)
            prepared.append((data["order_id"], orjson.dumps(data).decode(), arrived))
        ids = self.store.append(prepared)
        return [{"order_id": p[0], "entry_id": e} for p, e in zip(prepared, ids, strict=True)]

    def status(self, decisions: int = 5) -> dict[str, Any]:
        """What operators see: the state hash (typed), the live queue depth, the leader, pins, decisions."""
        raw = self.store.read_state()
        state: dict[str, Any] = {name: _typed(raw.get(name)) for name in STATE_FIELDS}
        state["mode"] = state["mode"] or self.settings.waveless_mode
        state["definition"] = state["definition"] or self.settings.waveless_definition
        state["queue_depth"] = self.store.depth()
        state["pending"] = sum(self.store.pending().values())
        state["leader"] = self.store.leader()
        state["pins"] = {"batch": state.pop("pinned_batch"), "rate": state.pop("pinned_rate")}
        if state["mode"] == Mode.FIXED.value:
            state["wave_size"] = state["wave_size"] or self.settings.waveless_wave_size
            state["wave_interval_s"] = state["wave_interval_s"] or self.settings.waveless_wave_interval_seconds
        state["decisions"] = [
            {k: _typed(v) if k != "id" else v for k, v in d.items()} for d in self.store.decisions(decisions)
        ]
        state["last_decision"] = state["decisions"][0] if state["decisions"] else None
        return state

    # ================================================================== the leader's loop
    def run(self) -> None:
        """Background thread of a worker: compete for the lock; while holding it, release."""
        try:
            while not self._stopped():
                try:
                    if not self.is_leader and not self.try_lead():
                        self._wait(self.settings.waveless_leader_ttl_seconds / 3)
                        continue
                    self.process_continuous_flow(block=True)
                except Exception as exc:
                    self._pending_maybe = True
                    self._last_error = f"{type(exc).__name__}: {exc}"
                    log.exception("waveless release failed; retrying")
                    self._wait(min(ERROR_BACKOFF_S, self.settings.waveless_leader_ttl_seconds / 3))
        finally:
            if self.is_leader:
                try:
                    self.store.resign(self.name)
                except Exception:
                    pass
                self.is_leader = False

    def try_lead(self) -> bool:
        got = self.store.lead(self.name, self._ttl_ms)
        if got == 0:
            return False
        self.is_leader = True
        if got == 2:
            self._take_over()
        return True

    def _take_over(self) -> None:
        now = self.clock()
        s = self.settings
        self.store.init_state(
            {
                "mode": s.waveless_mode,
                "wave_size": s.waveless_wave_size,
                "wave_interval_s": s.waveless_wave_interval_seconds,
                "wave_anchor": now,
            }
        )
        stored = _typed(self.store.read_state().get("batch_size"))
        if isinstance(stored, int):
            batch = self.params.clamp_batch(stored)
            self._control = ControlState(batch, self.params.rate_for(batch), "continued from the stored state", "hold")
        claimed = self.store.claim_stale(self.name, 0)
        self.store.forget_consumers(self.name)
        self._pending_maybe = True
        self._mode = None
        self._next_housekeeping = self._next_adjust = 0.0
        self._next_reclaim = now + RECLAIM_EVERY_S
        self._last_recorded = None
        self.store.write(
            {"leader": self.name},
            {
                "at": now,
                "kind": "leader",
                "reason": f"{self.name} leads the release; claimed {claimed} unacknowledged order(s)",
            },
        )
        log.info("waveless: %s leads the release (claimed %d unacknowledged orders)", self.name, claimed)

    def process_continuous_flow(self, now: float | None = None, block: bool = False) -> int:
        """One step of the leader's loop; returns the orders released. With ``block`` it waits (at most
        a tick) for orders or capacity instead of returning at once."""
        now = self.clock() if now is None else now
        if now >= self._next_housekeeping and not self._housekeeping(now):
            return 0
        if now >= self._next_adjust:
            load = self.measure(now)
            self.adjust_processing_rate(load)
            busy = load.queue_depth > 0 or self._released_since_adjust > 0 or load.in_flight > 0
            self._released_since_adjust = 0
            # Idle (nothing waiting, released or running): measure less often, workers are shared.
            self._next_adjust = now + self.settings.waveless_adjust_seconds * (1 if busy else IDLE_ADJUST_FACTOR)
            if now >= self._next_reclaim:
                if self.store.claim_stale(self.name, self._ttl_ms):
                    self._pending_maybe = True
                self._next_reclaim = now + RECLAIM_EVERY_S
        if now < self._retry_at:  # a release failed: wait, still renewing the lock every tick
            if block:
                self._wait(min(self.settings.waveless_tick_seconds, self._retry_at - now))
            return 0
        if self._mode is Mode.FIXED:
            quota, limit = self._fixed_quota(now)
        else:
            quota, limit = self._waveless_quota(now)
        if quota <= 0:
            self._limit = limit
            if block:
                self._wait(self._idle_wait(now, limit))
            return 0
        tick_ms = int(self.settings.waveless_tick_seconds * 1000)
        block_ms = tick_ms if block and self._mode is Mode.WAVELESS else None
        released, read, depth_after = self._release(quota, block_ms)
        if self._mode is Mode.FIXED:
            # The wave ends when it is complete or the intake ran dry.
            self._wave_remaining = self._wave_remaining - released if read == quota else 0
        else:
            self._bucket.take(released, self.clock())
            if released == quota and limit == "batch" and depth_after > 0:
                self._batch_limited = True
        self._released_since_count += released
        self._released_since_adjust += released
        # A waveless release that read fewer orders than its quota took every waiting order: nothing
        # held it back (the quota's smallest term, often the token bucket, was not what limited it).
        held_back = read > 0 and (self._mode is Mode.FIXED or read >= quota)
        self._limit = limit if held_back else "idle"
        return released

    def _housekeeping(self, now: float) -> bool:
        got = self.store.lead(self.name, self._ttl_ms)
        if got == 0:
            self.is_leader = False
            log.info("waveless: %s lost the release lock", self.name)
            return False
        if got == 2:
            self._take_over()
        cfg = self.store.read_state()
        try:
            mode = Mode(cfg.get("mode") or self.settings.waveless_mode)
        except ValueError:
            mode = Mode(self.settings.waveless_mode)
        pins = Pins(_int(cfg.get("pinned_batch")), _float(cfg.get("pinned_rate")))
        if mode is not self._mode:
            self._wave_remaining = 0  # a wave in progress ends with its mode
        if mode is not self._mode or pins != self._pins:
            self._mode, self._pins = mode, pins
            self._next_adjust = now  # apply at once
        self._cfg = cfg
        k = self.store.keys
        pipe = self.r.pipeline(transaction=False)
        for st in IN_FLIGHT:
            pipe.zcard(k.by_status(st.value))
        pipe.zcount(k.workers, int((now - WORKER_ALIVE_S) * 1000), "+inf")
        *counts, workers = pipe.execute()
        self._in_flight = sum(int(c) for c in counts)
        self._live_workers = max(1, int(workers))
        self._released_since_count = 0
        self._next_housekeeping = now + self.settings.waveless_tick_seconds
        return True

    def _fixed_quota(self, now: float) -> tuple[int, str]:
        size, interval, anchor = self._wave_config(now)
        due = wave_due(anchor, interval, now, _float(self._cfg.get("last_wave_at")) or 0.0)
        if due is not None:
            self._wave_remaining = size
            self._cfg["last_wave_at"] = repr(due)
            depth = self.store.depth()
            self.store.write(
                {"last_wave_at": due},
                {"at": now, "kind": "wave", "mode": Mode.FIXED.value, "batch_size": size, "queue_depth": depth,
                 "reason": f"wave due: releasing up to {size} of {depth} waiting order(s)"},
            )  # fmt: skip
        return min(self._wave_remaining, MAX_RELEASE), "wave"

    def _wave_config(self, now: float) -> tuple[int, float, float]:
        size = _int(self._cfg.get("wave_size")) or self.settings.waveless_wave_size
        interval = _float(self._cfg.get("wave_interval_s")) or self.settings.waveless_wave_interval_seconds
        anchor = _float(self._cfg.get("wave_anchor"))
        if anchor is None:
            anchor = now
            self._cfg["wave_anchor"] = repr(now)
            self.store.write({"wave_anchor": now})
        return size, interval, anchor

    def _waveless_quota(self, now: float) -> tuple[int, str]:
        load = SystemLoad(
            in_flight=self._in_flight + self._released_since_count,
            live_workers=self._live_workers,
            worker_slots=self.worker_slots,
        )
        quota, limit = release_quota(self._control, load, self.params, self._bucket.available(now), self._pins)
        return min(quota, MAX_RELEASE), limit

    def _idle_wait(self, now: float, limit: str) -> float:
        tick = self.settings.waveless_tick_seconds
        if self._mode is Mode.FIXED:
            _, interval, anchor = self._wave_config(now)
            return max(0.001, min(tick, next_wave_at(anchor, interval, now) - now))
        if limit == "rate":
            return max(0.001, min(tick, self._bucket.wait_for(1, now)))
        return tick

    def _release(self, quota: int, block_ms: int | None) -> tuple[int, int, int]:
        """Read up to ``quota`` orders (this releaser's unacknowledged ones first), start their sagas,
        acknowledge them. Returns (released, entries read, queue depth after)."""
        entries: list[IntakeEntry] = []
        if self._pending_maybe:
            entries = self.store.read_pending(self.name, quota)
        more_pending = len(entries) == quota
        if not entries:
            entries = self.store.read_new(self.name, quota, block_ms)
        if not entries:
            self._pending_maybe = False
            return 0, 0, 0
        self._pending_maybe = True  # until acknowledged, these are pending
        try:
            definition = self.definition()
        except EngineError as exc:
            self._record_error(f"cannot release: {exc}")
            self._retry_at = self.clock() + ERROR_BACKOFF_S
            return 0, len(entries), 0
        started: list[str] = []
        rejected: list[tuple[IntakeEntry, str]] = []
        try:
            for e in entries:
                if e.order is None:
                    started.append(e.entry_id)  # deleted meanwhile: nothing to start
                    continue
                try:
                    self.starter.start(
                        definition,
                        e.order,
                        correlation_id=e.order_id,
                        idempotency_key=f"order:{e.order_id}",
                        headers={ARRIVED_HEADER: repr(e.arrived_at)},
                        principal="waveless",
                    )
                except InputValidationError as exc:
                    rejected.append((e, str(exc)))
                    continue
                started.append(e.entry_id)
        except EngineError as exc:
            self._record_error(f"cannot start orders: {exc}")
            self._retry_at = self.clock() + ERROR_BACKOFF_S
        finally:
            now = self.clock()
            released, depth = self.store.ack(started, now=now)
            if rejected:
                _, depth = self.store.ack([e.entry_id for e, _ in rejected], counter="rejected_total", now=now)
                for e, why in rejected:
                    self.store.write(None, {"at": now, "kind": "rejected", "order_id": e.order_id, "reason": why})
                log.warning("waveless: %d order(s) rejected by %s", len(rejected), definition.name)
        if len(started) + len(rejected) == len(entries):
            if self._last_error:
                self._last_error = ""
                self.store.write({"last_error": ""})
            self._pending_maybe = more_pending
        return released, len(entries), depth

    def _record_error(self, message: str) -> None:
        if message != self._last_error:
            log.warning("waveless: %s", message)
            self.store.write({"last_error": message}, {"at": self.clock(), "kind": "error", "reason": message})
        self._last_error = message

    def definition(self, fresh: bool = False) -> WorkflowDefinition:
        """The saga orders start: the latest active version of ``waveless_definition``."""
        at, cached = self._definition_cache
        if fresh or cached is None or time.monotonic() - at > DEFINITION_REFRESH_S:
            cached = self.definitions.get(self.settings.waveless_definition)
            self._definition_cache = (time.monotonic(), cached)
        return cached

    # ================================================================== measuring and adjusting
    def measure(self, now: float | None = None) -> SystemLoad:
        """The load the law reads: queue depth, sagas in flight, live workers, the saga's services
        (highest instance utilization, open breakers), step latency p95 and throughput."""
        now = self.clock() if now is None else now
        k = self.store.keys
        pipe = self.r.pipeline(transaction=False)
        pipe.get(k.orders_depth)
        for st in IN_FLIGHT:
            pipe.zcard(k.by_status(st.value))
        pipe.zcount(k.workers, int((now - WORKER_ALIVE_S) * 1000), "+inf")
        depth, *counts, workers = pipe.execute()
        service_util, open_breakers = self._service_load()
        p95, throughput = self._latency.update(now)
        load = SystemLoad(
            queue_depth=int(depth or 0),
            in_flight=sum(int(c) for c in counts),
            live_workers=max(1, int(workers)),
            worker_slots=self.worker_slots,
            service_utilization=service_util,
            latency_p95_s=p95,
            open_breakers=open_breakers,
            batch_limited=self._batch_limited,
            throughput=throughput,
        )
        self._batch_limited = False
        return load

    def _service_load(self) -> tuple[float, tuple[str, ...]]:
        try:
            names = self._services_of(self.definition())
        except EngineError:
            return 0.0, ()
        util = 0.0
        open_breakers = []
        for name in names:
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
        if self._saga_services[0] == definition.definition_id:
            return self._saga_services[1]
        names: list[str] = []
        for step in definition.steps:
            refs = [step.action]
            if step.compensation is not None:
                refs += [step.compensation.action, step.compensation.alternative]
            for ref in refs:
                service = getattr(ref, "service", None)
                if service and service not in names:
                    names.append(service)
        self._saga_services = (definition.definition_id, tuple(names))
        return self._saga_services[1]

    def calculate_dynamic_batch_size(self, load: SystemLoad) -> tuple[int, str]:
        """The batch size the law gives for ``load`` from the current one, and why (nothing is applied)."""
        return batch_law(self._control.batch_size, load, self.params)

    def adjust_processing_rate(self, metrics: SystemLoad) -> ControlState:
        """Apply one control step (waveless: the law or the operator's pin; fixed: the wave settings),
        publish the state, and record a decision when the batch size, the rate or the kind of step changed."""
        now = self.clock()
        mode = self._mode or Mode(self.settings.waveless_mode)
        if mode is Mode.FIXED:
            size, interval, _ = self._wave_config(now)
            shown = ControlState(size, size / interval, f"fixed waves: {size} orders every {interval:g} s", "fixed")
        else:
            shown = adjust_law(self._control, metrics, self.params, self._pins)
            self._control = shown
            self._bucket.configure(shown.rate, shown.batch_size)
        fields: dict[str, Any] = {
            "definition": self.settings.waveless_definition,
            "leader": self.name,
            "batch_size": shown.batch_size,
            "rate": round(shown.rate, 3),
            "limit": self._limit,
            "queue_depth": metrics.queue_depth,
            "in_flight": metrics.in_flight,
            "live_workers": metrics.live_workers,
            "worker_slots": metrics.worker_slots,
            "utilization": round(metrics.utilization, 4),
            "worker_utilization": round(metrics.worker_utilization, 4),
            "service_utilization": round(metrics.service_utilization, 4),
            "target_utilization": self.params.target_utilization,
            "latency_p95_ms": None if metrics.latency_p95_s is None else round(metrics.latency_p95_s * 1000, 2),
            "latency_sla_ms": self.settings.waveless_latency_sla_ms,
            "breakers_open": metrics.open_breakers,
            "throughput": None if metrics.throughput is None else round(metrics.throughput, 2),
            "last_kind": shown.kind,
            "last_reason": shown.reason,
            "updated_at": now,
        }
        key = (mode, shown.batch_size, round(shown.rate, 3), shown.kind)
        decision = None
        if key != self._last_recorded:
            previous = self._last_recorded[1] if self._last_recorded else None
            if self._last_recorded is None or key[1:3] != self._last_recorded[1:3]:
                fields["last_change_at"] = now
            decision = {
                "at": now,
                "kind": shown.kind,
                "mode": mode.value,
                "batch_size": shown.batch_size,
                "previous_batch": previous,
                "rate": round(shown.rate, 3),
                "reason": shown.reason,
                "queue_depth": metrics.queue_depth,
                "in_flight": metrics.in_flight,
                "utilization": round(metrics.utilization, 4),
                "latency_p95_ms": fields["latency_p95_ms"],
                "breakers_open": metrics.open_breakers,
            }
            self._last_recorded = key
        self.store.write(fields, decision)
        return shown

    # ================================================================== helpers
    def _stopped(self) -> bool:
        return self.stop.is_set() or (self.draining is not None and self.draining.is_set())

    def _wait(self, seconds: float) -> None:
        self.stop.wait(max(0.0, seconds))


# ====================================================================== order generator
def generate_orders(
    service: WavelessProcessingService,
    pattern: OrderPattern,
    *,
    template: Mapping[str, Any] | None = None,
    stop: Callable[[], bool] = lambda: False,
    repeat: bool = False,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    on_submit: Callable[[list[dict[str, str]]], None] | None = None,
) -> dict[str, Any]:
    """Submit orders at the pattern's arrival times (``repeat``: over and over until ``stop()``).
    Orders due together (the generator fell behind) are submitted in one call."""
    offsets = pattern.arrivals()
    base = dict(template or {})
    base.pop("order_id", None)
    t0 = clock()
    submitted = 0
    cycle = 0
    i = 0
    while offsets and not stop():
        if i >= len(offsets):
            if not repeat:
                break
            cycle += 1
            i = 0
        start = t0 + cycle * pattern.duration_s
        now = clock()
        due = start + offsets[i]
        if due > now:
            sleep(min(due - now, 0.25))
            continue
        j = i
        while j < len(offsets) and j - i < 200 and start + offsets[j] <= now:
            j += 1
        accepted = service.submit([{**base, "order_id": new_order_id()} for _ in range(j - i)])
        submitted += len(accepted)
        i = j
        if on_submit is not None:
            on_submit(accepted)
    elapsed = clock() - t0
    return {
        "pattern": pattern.pattern.value,
        "rate": pattern.rate,
        "peak_rate": pattern.peak if pattern.pattern.value != "steady" else None,
        "duration_s": pattern.duration_s,
        "submitted": submitted,
        "elapsed_s": round(elapsed, 3),
        "mean_rate": round(submitted / elapsed, 2) if elapsed > 0 else None,
    }


def _typed(value: str | None) -> Any:
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        pass
    try:
        f = float(value)
    except ValueError:
        return value
    return f if math.isfinite(f) else value


def _int(value: str | None) -> int | None:
    v = _typed(value)
    return int(v) if isinstance(v, int | float) else None


def _float(value: str | None) -> float | None:
    v = _typed(value)
    return float(v) if isinstance(v, int | float) else None
