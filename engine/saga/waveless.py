"""WavelessProcessingService: orders flow in continuously and are released into sagas in batches sized
from the measured load (the seed's WavelessProcessingService).

This module is the operators' side (any process: the CLI, the API, a worker): accept orders on the
intake, switch between fixed waves and waveless release, pin or unpin the batch size or the rate, read
the controller's state and decisions. The release is ``engine.saga.waveless_controller``, the load it
reads ``engine.saga.waveless_measurement``, the law ``engine.domain.waveless``.

Every worker process runs :meth:`WavelessProcessingService.run` on a background thread; one of them holds the
leader lock (``waveless_leader``, renewed every tick, TTL ``waveless_leader_ttl_seconds``) and releases.
When the leader dies, another worker takes the lock once it expires, claims the orders the dead one had
read and not acknowledged (XAUTOCLAIM), and releases them: the start's idempotency key
``order:<order id>`` finds a saga already started instead of starting a second one.

The leader's loop (:meth:`ReleaseController.process_continuous_flow` is one step of it):

- every tick (``waveless_tick_seconds``): renew the lock, read the operator's settings (mode, wave
  size and interval, pins) from ``waveless_state``, count the sagas in flight and the live workers;
- every adjustment (``waveless_adjust_seconds``): :meth:`~ReleaseController.measure` the load and
  :meth:`~ReleaseController.adjust_processing_rate` (the law), writing the state and, when something
  changed, a decision;
- release: ``fixed``: when a wave is due, up to ``wave_size`` orders; ``waveless``: up to
  ``release_quota`` orders (batch size, rate, headroom), waiting on the intake when it is empty so an
  arriving order is released at once.

A release reads entries through the consumer group, starts one saga per order through the start use
case (correlation id = order id, the arrival time in the ``x-order-arrived-at`` header), then
acknowledges them and takes them off the queue depth in one script. An order whose input the saga
refuses is acknowledged as rejected and recorded as a decision; any other failure leaves the orders
pending to be released again.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import orjson

from engine.domain.definition import WorkflowDefinition
from engine.domain.waveless import ControlParams, Mode, Pins, ProcessingStrategy
from engine.errors import InputValidationError
from engine.persistence.waveless_store import STATE_FIELDS, WavelessStore, decode
from engine.saga.waveless_controller import ReleaseController

if TYPE_CHECKING:
    from engine.persistence.definition_repository import DefinitionRepository
    from engine.settings import EngineSettings


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


def new_order_id() -> str:
    return f"o-{uuid.uuid4().hex[:12]}"


class WavelessProcessingService:
    """The operator's side of the waveless release (any process), and the release controller a worker
    runs (:meth:`run`, :attr:`controller`)."""

    def __init__(
        self,
        *,
        settings: EngineSettings,
        store: WavelessStore,
        definitions: DefinitionRepository,
        controller: ReleaseController,
        clock: Callable[[], float] = time.time,
    ):
        self.settings = settings
        self.store = store
        self.definitions = definitions
        self.controller = controller
        self.meter = controller.meter
        self.params = controller.params
        self.name = controller.name
        self.clock = clock

    def run(self) -> None:
        """A worker's background thread: compete for the leader lock; while holding it, release."""
        self.controller.run()

    def definition(self) -> WorkflowDefinition:
        """The saga orders start: the latest active version of ``waveless_definition``."""
        return self.definitions.get(self.settings.waveless_definition)

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
        definition = self.definition()
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
        state: dict[str, Any] = {name: decode(raw.get(name)) for name in STATE_FIELDS}
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
            {k: decode(v) if k != "id" else v for k, v in d.items()} for d in self.store.decisions(decisions)
        ]
        state["last_decision"] = state["decisions"][0] if state["decisions"] else None
        return state
