"""The waveless release controller: the leader's loop that releases orders from the intake into sagas
(see ``engine.saga.waveless`` for the flow; the law is ``engine.domain.waveless``, the load it reads is
measured by ``engine.saga.waveless_measurement``)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from engine.domain.definition import WorkflowDefinition
from engine.domain.waveless import (
    ControlParams,
    ControlState,
    Mode,
    Pins,
    SystemLoad,
    TokenBucket,
    next_wave_at,
    release_quota,
    wave_due,
)
from engine.domain.waveless import adjust_processing_rate as adjust_law
from engine.domain.waveless import calculate_dynamic_batch_size as batch_law
from engine.errors import EngineError, InputValidationError
from engine.persistence.waveless_store import IntakeEntry, WavelessStore, decode, decode_float, decode_int
from engine.saga.waveless_measurement import LoadMeter

if TYPE_CHECKING:
    from engine.persistence.definition_repository import DefinitionRepository
    from engine.saga.starting import WorkflowStarter
    from engine.settings import EngineSettings

log = logging.getLogger(__name__)

MAX_RELEASE = 500
"""Orders read per release at most: a bigger wave takes several releases."""
DEFINITION_REFRESH_S = 2.0
IDLE_ADJUST_FACTOR = 4
"""With nothing waiting, released or in flight, the load is measured this many times less often."""
RECLAIM_EVERY_S = 5.0
"""How often the leader claims orders a former leader still holds (beyond the claim at takeover)."""
ERROR_BACKOFF_S = 1.0
ARRIVED_HEADER = "x-order-arrived-at"


class ReleaseController:
    """The leader's release loop (the flow: ``engine.saga.waveless``); one per worker process."""

    def __init__(
        self,
        *,
        settings: EngineSettings,
        store: WavelessStore,
        definitions: DefinitionRepository,
        starter: WorkflowStarter,
        meter: LoadMeter,
        params: ControlParams,
        name: str,
        stop: threading.Event | None = None,
        draining: threading.Event | None = None,
        clock: Callable[[], float] = time.time,
    ):
        self.settings = settings
        self.store = store
        self.definitions = definitions
        self.starter = starter
        self.meter = meter
        self.params = params
        self.name = name
        self.stop = stop or threading.Event()
        self.draining = draining
        self.clock = clock
        self.is_leader = False
        initial = params.clamp_batch(settings.waveless_initial_batch)
        self._control = ControlState(initial, params.rate_for(initial), "initial batch size", "hold")
        self._bucket = TokenBucket(self._control.rate, self._control.batch_size, clock())
        self._ttl_ms = max(100, int(settings.waveless_leader_ttl_seconds * 1000))
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
        self._last_error = ""
        self._retry_at = 0.0

    @property
    def control(self) -> ControlState:
        """What releases obey until the next adjustment."""
        return self._control

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
        stored = decode(self.store.read_state().get("batch_size"))
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
        pins = Pins(decode_int(cfg.get("pinned_batch")), decode_float(cfg.get("pinned_rate")))
        if mode is not self._mode:
            self._wave_remaining = 0  # a wave in progress ends with its mode
        if mode is not self._mode or pins != self._pins:
            self._mode, self._pins = mode, pins
            self._next_adjust = now  # apply at once
        self._cfg = cfg
        counts = self.meter.counts(now)
        self._in_flight = counts.in_flight
        self._live_workers = max(1, counts.live_workers)
        self._released_since_count = 0
        self._next_housekeeping = now + self.settings.waveless_tick_seconds
        return True

    def _fixed_quota(self, now: float) -> tuple[int, str]:
        size, interval, anchor = self._wave_config(now)
        due = wave_due(anchor, interval, now, decode_float(self._cfg.get("last_wave_at")) or 0.0)
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
        size = decode_int(self._cfg.get("wave_size")) or self.settings.waveless_wave_size
        interval = decode_float(self._cfg.get("wave_interval_s")) or self.settings.waveless_wave_interval_seconds
        anchor = decode_float(self._cfg.get("wave_anchor"))
        if anchor is None:
            anchor = now
            self._cfg["wave_anchor"] = repr(now)
            self.store.write({"wave_anchor": now})
        return size, interval, anchor

    def _waveless_quota(self, now: float) -> tuple[int, str]:
        load = SystemLoad(
            in_flight=self._in_flight + self._released_since_count,
            live_workers=self._live_workers,
            worker_slots=self.meter.worker_slots,
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

    def definition(self) -> WorkflowDefinition:
        """The saga orders start: the latest active version of ``waveless_definition`` (re-read every
        ``DEFINITION_REFRESH_S``)."""
        at, cached = self._definition_cache
        if cached is None or time.monotonic() - at > DEFINITION_REFRESH_S:
            cached = self.definitions.get(self.settings.waveless_definition)
            self._definition_cache = (time.monotonic(), cached)
        return cached

    # ================================================================== measuring and adjusting
    def measure(self, now: float | None = None) -> SystemLoad:
        """The load the law reads (see ``engine.saga.waveless_measurement``)."""
        now = self.clock() if now is None else now
        try:
            definition: WorkflowDefinition | None = self.definition()
        except EngineError:
            definition = None
        load = self.meter.measure(now, definition, self._batch_limited)
        self._batch_limited = False
        return load

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
