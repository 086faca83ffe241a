"""The waveless order flow in Redis: the intake, its queue depth, the release consumer group, the
controller's leader lock, its state hash and its decision stream.

Keys (``engine/persistence/keys.py``):

- ``orders_intake`` STREAM, one entry per accepted order: ``id`` (order id), ``o`` (the order JSON, the
  saga's input), ``at`` (arrival, epoch seconds: the durable start of the order's cycle time). Released
  entries are acknowledged and deleted, so the stream holds the orders not yet released (plus those
  delivered to a releaser and not yet acknowledged).
- ``orders_depth`` STRING, orders accepted and not yet acknowledged; moved only by INTAKE_APPEND and
  INTAKE_ACK, together with the stream.
- ``waveless_leader`` STRING (PX), the worker running the controller.
- ``waveless_decisions`` STREAM (capped), one entry per decision: see ``DECISION_FIELDS``.
- ``waveless_state`` HASH, see ``STATE_FIELDS``.

Releases go through the consumer group ``<prefix>-waveless`` (a group name, not a key): an entry
delivered to a releaser stays pending until acknowledged, so an order a dead releaser held is claimed
(XAUTOCLAIM) and released again by the next leader; the saga's start idempotency key
``order:<order id>`` makes a second delivery find the first saga instead of starting another.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
import redis

from engine.domain.status import WorkflowStatus
from engine.persistence import scripts
from engine.persistence.keys import Keys
from engine.settings import EngineSettings

STATE_FIELDS: dict[str, str] = {
    # set by operators (`wes waveless mode|pin|unpin`); the controller only reads them
    "mode": "fixed | waveless",
    "wave_size": "fixed mode: orders per wave",
    "wave_interval_s": "fixed mode: seconds between waves",
    "wave_anchor": "fixed mode: epoch s the wave schedule counts from (waves at anchor + k * interval)",
    "pinned_batch": "operator's batch size ('' when not pinned)",
    "pinned_rate": "operator's rate, orders/s ('' when not pinned)",
    "mode_changed_at": "epoch s of the last mode change or pin",
    "mode_changed_by": "who made it",
    # counters, moved by the intake scripts
    "accepted_total": "orders accepted on the intake",
    "released_total": "orders released (their saga started, or found started) and acknowledged",
    "rejected_total": "orders whose input the saga refused at release (acknowledged, never started)",
    "last_release_at": "epoch s of the last release",
    "last_release_count": "orders in it",
    # written by the controller (the leader) every adjustment
    "last_wave_at": "fixed mode: scheduled time (epoch s) of the last wave released",
    "definition": "saga the orders start",
    "leader": "worker running the controller",
    "batch_size": "orders per release, at most",
    "rate": "orders released per second, at most",
    "limit": "what held the last release back: batch | rate | headroom | wave | idle (nothing: no order left waiting)",
    "queue_depth": "orders waiting (the depth counter) when measured",
    "in_flight": "sagas CREATED + RUNNING + COMPENSATING (all definitions)",
    "live_workers": "worker processes with a heartbeat in the last 5 s",
    "worker_slots": "sagas per worker before they queue",
    "utilization": "max(worker_utilization, service_utilization)",
    "worker_utilization": "in_flight / (live_workers * worker_slots)",
    "service_utilization": "highest calls in flight / capacity over the saga's service instances",
    "target_utilization": "the 85 % target",
    "latency_p95_ms": "step execution p95 over the latency window ('' when no step ran)",
    "latency_sla_ms": "its SLA",
    "breakers_open": "comma-separated services of the saga whose breaker is open",
    "throughput": "sagas finished per second over the latency window",
    "last_kind": "what the last adjustment did: grow | shrink | hold | pinned | fixed",
    "last_reason": "why",
    "last_change_at": "epoch s the batch size or rate last changed",
    "last_error": "why the last release could not start orders ('' when it could)",
    "updated_at": "epoch s of the last adjustment",
}
"""The fields of ``waveless_state``, documented (operators read them with ``wes waveless status``)."""

DECISION_FIELDS = (
    "at", "kind", "mode", "batch_size", "previous_batch", "rate", "reason", "queue_depth", "in_flight",
    "utilization", "latency_p95_ms", "breakers_open", "by", "order_id",
)  # fmt: skip
"""Fields a decision entry may carry; ``kind``: grow | shrink | hold | pinned | fixed | wave | mode | pin |
unpin | leader | rejected | error."""

IN_FLIGHT = (WorkflowStatus.CREATED, WorkflowStatus.RUNNING, WorkflowStatus.COMPENSATING)
"""The sagas the release counts as in flight (all definitions)."""


@dataclass(frozen=True)
class IntakeEntry:
    entry_id: str
    order_id: str
    order: dict[str, Any] | None
    """None: the entry was deleted while pending (acknowledge it, nothing to start)."""
    arrived_at: float


@dataclass(frozen=True)
class FlowCounts:
    """What the release reads of the engine's load, taken in one round trip."""

    queue_depth: int
    in_flight: int
    """Sagas CREATED, RUNNING or COMPENSATING (all definitions)."""
    live_workers: int
    """Workers with a heartbeat at or after the time asked for (0 when none)."""
    state: dict[str, str | None] = field(default_factory=dict)
    """The ``waveless_state`` fields asked for, raw (None when not set)."""


def _entry(entry_id: str, fields: Mapping[str, str] | None) -> IntakeEntry:
    if not fields:
        return IntakeEntry(entry_id, "", None, 0.0)
    try:
        order = orjson.loads(fields.get("o", "{}"))
    except orjson.JSONDecodeError:
        order = {"_unreadable": fields.get("o", "")}
    return IntakeEntry(entry_id, fields.get("id", ""), order, float(fields.get("at", 0) or 0))


class WavelessStore:
    def __init__(self, client: redis.Redis, settings: EngineSettings):
        self.r = client
        self.settings = settings
        self.keys = Keys(settings.key_prefix)
        self.group = f"{settings.key_prefix}-waveless"
        self._append = client.register_script(scripts.INTAKE_APPEND)
        self._ack = client.register_script(scripts.INTAKE_ACK)
        self._lead = client.register_script(scripts.LEADER)
        self._resign = client.register_script(scripts.RESIGN)
        self._group_ready = False

    # ------------------------------------------------------------------ intake
    def append(self, orders: Sequence[tuple[str, str, float]]) -> list[str]:
        """Append (order id, order JSON, arrived at) triples; returns their entry ids."""
        if not orders:
            return []
        args: list[Any] = []
        for order_id, body, arrived in orders:
            args += [order_id, body, repr(float(arrived))]
        k = self.keys
        return list(self._append(keys=[k.orders_intake, k.orders_depth, k.waveless_state], args=args))

    def depth(self) -> int:
        return int(self.r.get(self.keys.orders_depth) or 0)

    def intake_length(self) -> int:
        return int(self.r.xlen(self.keys.orders_intake))

    def flow_counts(self, alive_since_ms: int, state_fields: Sequence[str] = ()) -> FlowCounts:
        """The queue depth, the sagas in flight, the workers with a heartbeat since ``alive_since_ms`` and
        the ``state_fields`` of the state hash, in one round trip."""
        k = self.keys
        pipe = self.r.pipeline(transaction=False)
        pipe.get(k.orders_depth)
        for st in IN_FLIGHT:
            pipe.zcard(k.by_status(st.value))
        pipe.zcount(k.workers, alive_since_ms, "+inf")
        if state_fields:
            pipe.hmget(k.waveless_state, list(state_fields))
        replies = pipe.execute()
        depth, counts, workers = replies[0], replies[1 : 1 + len(IN_FLIGHT)], replies[1 + len(IN_FLIGHT)]
        state = dict(zip(state_fields, replies[-1], strict=True)) if state_fields else {}
        return FlowCounts(int(depth or 0), sum(int(c) for c in counts), int(workers), state)

    # ------------------------------------------------------------------ release
    def ensure_group(self) -> None:
        if self._group_ready:
            return
        try:
            self.r.xgroup_create(self.keys.orders_intake, self.group, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._group_ready = True

    def _read(self, consumer: str, start: str, count: int, block_ms: int | None) -> list[IntakeEntry]:
        self.ensure_group()
        try:
            rows = self.r.xreadgroup(
                self.group, consumer, {self.keys.orders_intake: start}, count=count, block=block_ms
            )
        except redis.ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            self._group_ready = False  # the stream was deleted: the next call creates the group again
            return []
        return [_entry(eid, fields) for _, entries in rows or [] for eid, fields in entries]

    def read_pending(self, consumer: str, count: int) -> list[IntakeEntry]:
        """Entries already delivered to this consumer and not acknowledged (oldest first)."""
        return self._read(consumer, "0", count, None)

    def read_new(self, consumer: str, count: int, block_ms: int | None = None) -> list[IntakeEntry]:
        """Entries never delivered, oldest first (waiting up to ``block_ms`` for one if there are none)."""
        return self._read(consumer, ">", count, block_ms or None)

    def claim_stale(self, consumer: str, min_idle_ms: int, count: int = 1000) -> int:
        """Move to ``consumer`` the pending entries other consumers (former leaders) held for at least
        ``min_idle_ms``; they are then read with ``read_pending``. Returns how many."""
        self.ensure_group()
        claimed = 0
        start = "0-0"
        try:
            while True:
                reply = self.r.xautoclaim(
                    self.keys.orders_intake, self.group, consumer, min_idle_ms, start, count=count
                )
                # Redis 7 replies (next id, entries, deleted ids); Redis 6.2 (the embedded server) has no deleted ids.
                start, entries = reply[0], reply[1]
                claimed += len(entries or [])
                if start == "0-0":
                    return claimed
        except redis.ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            self._group_ready = False
            return claimed

    def forget_consumers(self, keep: str) -> int:
        """Delete consumers other than ``keep`` that hold nothing (former leaders)."""
        self.ensure_group()
        gone = 0
        try:
            for c in self.r.xinfo_consumers(self.keys.orders_intake, self.group):
                if c["name"] != keep and int(c["pending"]) == 0:
                    self.r.xgroup_delconsumer(self.keys.orders_intake, self.group, c["name"])
                    gone += 1
        except redis.ResponseError:
            pass
        return gone

    def ack(
        self, entry_ids: Iterable[str], counter: str = "released_total", now: float | None = None
    ) -> tuple[int, int]:
        """Acknowledge and delete released entries and take them off the depth, together.
        Returns (entries acknowledged now, queue depth after)."""
        ids = list(entry_ids)
        if not ids:
            return 0, self.depth()
        k = self.keys
        n, depth = self._ack(
            keys=[k.orders_intake, k.orders_depth, k.waveless_state],
            args=[self.group, counter, repr(now if now is not None else time.time()), *ids],
        )
        return int(n), int(depth)

    def pending(self) -> dict[str, int]:
        """Entries delivered and not acknowledged, per consumer."""
        self.ensure_group()
        try:
            info = self.r.xpending(self.keys.orders_intake, self.group)
        except redis.ResponseError:
            return {}
        return {c["name"]: int(c["pending"]) for c in info.get("consumers") or []}

    # ------------------------------------------------------------------ leader
    def lead(self, name: str, ttl_ms: int) -> int:
        """2: newly took the lock, 1: renewed it, 0: another worker holds it."""
        return int(self._lead(keys=[self.keys.waveless_leader], args=[name, ttl_ms]))

    def resign(self, name: str) -> bool:
        return bool(self._resign(keys=[self.keys.waveless_leader], args=[name]))

    def leader(self) -> str | None:
        return self.r.get(self.keys.waveless_leader)

    # ------------------------------------------------------------------ state + decisions
    def read_state(self) -> dict[str, str]:
        return self.r.hgetall(self.keys.waveless_state)

    def init_state(self, defaults: Mapping[str, Any]) -> None:
        """Set fields that are not set yet (the mode and wave size a fresh deployment starts with)."""
        pipe = self.r.pipeline(transaction=False)
        for name, value in defaults.items():
            pipe.hsetnx(self.keys.waveless_state, name, _str(value))
        pipe.execute()

    def write(self, fields: Mapping[str, Any] | None = None, decision: Mapping[str, Any] | None = None) -> None:
        """Update state fields and record a decision, in one transaction."""
        pipe = self.r.pipeline(transaction=True)
        if fields:
            pipe.hset(self.keys.waveless_state, mapping={k: _str(v) for k, v in fields.items()})
        if decision:
            pipe.xadd(
                self.keys.waveless_decisions,
                {k: _str(v) for k, v in decision.items()},
                maxlen=self.settings.waveless_decisions_maxlen,
                approximate=True,
            )
        pipe.execute()

    def decisions(self, count: int = 10) -> list[dict[str, str]]:
        """The latest decisions, newest first."""
        if count <= 0:
            return []
        rows = self.r.xrevrange(self.keys.waveless_decisions, "+", "-", count=count)
        return [{"id": eid, **fields} for eid, fields in rows]


def _str(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        return f"{value:.6g}" if abs(value) < 1e6 else repr(value)
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value)
    return str(value)


def decode(value: str | None) -> Any:
    """A state or decision field as written (ints and finite floats typed; '' and missing: None)."""
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


def decode_int(value: str | None) -> int | None:
    v = decode(value)
    return int(v) if isinstance(v, int | float) else None


def decode_float(value: str | None) -> float | None:
    v = decode(value)
    return float(v) if isinstance(v, int | float) else None
