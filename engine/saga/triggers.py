"""Event and schedule triggers, run in every worker process.

Event: each entry on a definition's Redis stream starts one instance. Workers share a consumer
group, so each entry goes to one of them; the start is keyed by the entry id, so a redelivered entry
(a worker died before acknowledging) never starts a second instance.
Schedule: every worker looks at due cron fires; the start is keyed by the fire time, so exactly one
instance starts per fire however many workers look.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime
from typing import Any

import orjson
from croniter import croniter

from engine.domain.definition import WorkflowDefinition
from engine.domain.status import TriggerKind
from engine.errors import EngineError
from engine.persistence.definition_repository import DefinitionRepository
from engine.persistence.errors import StoreError
from engine.persistence.trigger_store import TriggerStore
from engine.saga.starting import WorkflowStarter

log = logging.getLogger(__name__)

REFRESH_S = 2.0
BLOCK_MS = 500
CLAIM_IDLE_MS = 30_000


def entry_input(fields: dict[str, str]) -> dict[str, Any]:
    """A stream entry's fields as input; a single ``input``/``data``/``json`` field holding a JSON
    object is unpacked."""
    for name in ("input", "data", "json"):
        if name in fields and len(fields) <= 2:
            try:
                value = orjson.loads(fields[name])
            except orjson.JSONDecodeError:
                break
            if isinstance(value, dict):
                return value
    return {k: v for k, v in fields.items() if k != "correlation_id"}


class TriggerService:
    def __init__(
        self,
        store: TriggerStore,
        definitions: DefinitionRepository,
        starter: WorkflowStarter,
        consumer: str,
        stop: threading.Event,
    ):
        self.store = store
        self.definitions = definitions
        self.starter = starter
        self.consumer = consumer
        self.stop = stop
        self._definitions: list[WorkflowDefinition] = []
        self._refreshed = 0.0

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                self.refresh()
                fired = self.fire_schedules(time.time())
                consumed = self.consume_events()
                if not consumed and not fired and not self.event_streams():
                    self.stop.wait(0.5)
            except StoreError:
                log.exception("trigger loop: Redis error")
                self.stop.wait(1.0)
            except Exception:
                log.exception("trigger loop failed")
                self.stop.wait(1.0)

    def refresh(self, force: bool = False) -> None:
        if force or time.monotonic() - self._refreshed > REFRESH_S:
            self._definitions = [
                d for d in self.definitions.find_active_definitions() if d.trigger.kind is not TriggerKind.MANUAL
            ]
            self._refreshed = time.monotonic()

    def event_streams(self) -> dict[str, WorkflowDefinition]:
        out: dict[str, WorkflowDefinition] = {}
        for d in sorted(self._definitions, key=lambda d: d.version or 0):
            if d.trigger.kind is TriggerKind.EVENT and d.trigger.stream:
                out[d.trigger.stream] = d  # the newest active version wins
        return out

    def consume_events(self) -> int:
        streams = self.event_streams()
        if not streams:
            return 0
        for stream in streams:
            self.store.ensure_group(stream)
        handled = 0
        for stream in streams:
            for entry in self.store.claim_stale(stream, self.consumer, CLAIM_IDLE_MS):
                handled += self._start_from_entry(streams[stream], *entry)
        for entry in self.store.read_new(streams, self.consumer, count=100, block_ms=BLOCK_MS):
            handled += self._start_from_entry(streams[entry[0]], *entry)
        return handled

    def _start_from_entry(
        self, definition: WorkflowDefinition, stream: str, entry_id: str, fields: dict[str, str] | None
    ) -> int:
        if fields is None:  # entry deleted meanwhile
            self.store.ack(stream, entry_id)
            return 0
        try:
            self.starter.start(
                definition,
                entry_input(fields),
                correlation_id=fields.get("correlation_id"),
                idempotency_key=f"trigger:{stream}:{entry_id}",
                principal=f"trigger:event:{stream}",
            )
        except EngineError as exc:
            # Bad input (or a STRICT saga on a server that cannot fsync) is not retried forever:
            # acknowledged and logged with the reason.
            log.warning("event %s on %s did not start %s: %s", entry_id, stream, definition.name, exc)
        self.store.ack(stream, entry_id)
        return 1

    def fire_schedules(self, now: float) -> int:
        fired = 0
        for d in self._definitions:
            if d.trigger.kind is not TriggerKind.SCHEDULE or not d.trigger.cron:
                continue
            last = self.store.last_fire(d.definition_id)
            if last is None:
                self.store.first_sight(d.definition_id, now)
                continue
            nxt = croniter(d.trigger.cron, datetime.fromtimestamp(last, UTC)).get_next(float)
            if nxt > now:
                continue
            try:
                self.starter.start(
                    d,
                    dict(d.trigger.input),
                    correlation_id=f"cron:{d.name}:{int(nxt)}",
                    idempotency_key=f"cron:{d.definition_id}:{int(nxt)}",
                    principal="trigger:schedule",
                )
            except EngineError as exc:
                # As for an event: this fire is skipped with the reason, the schedule goes on.
                log.warning("schedule of %s at %s did not start it: %s", d.name, int(nxt), exc)
            self.store.fired(d.definition_id, nxt)
            fired += 1
        return fired
