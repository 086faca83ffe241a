"""Event and schedule triggers, run in every worker process.

Event: each entry on a definition's Redis stream starts one instance. Workers share a consumer
group, so each entry goes to one of them; the start is keyed by the entry id, so a redelivered entry
(a worker died before acknowledging) never starts a second instance.
Schedule: every worker looks at due cron fires; the start is keyed by the fire time, so exactly one
instance starts per fire however many workers look.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson
import redis
from croniter import croniter

from engine.domain.definition import WorkflowDefinition
from engine.domain.status import TriggerKind
from engine.errors import EngineError

if TYPE_CHECKING:
    from engine.saga.runtime import Runtime

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
    def __init__(self, runtime: Runtime):
        self.rt = runtime
        self.group = f"{runtime.settings.key_prefix}-triggers"
        self._definitions: list[WorkflowDefinition] = []
        self._refreshed = 0.0
        self._groups: set[str] = set()

    def run(self) -> None:
        while not self.rt.stop_event.is_set():
            try:
                self.refresh()
                fired = self.fire_schedules(time.time())
                consumed = self.consume_events()
                if not consumed and not fired and not self.event_streams():
                    self.rt.stop_event.wait(0.5)
            except redis.RedisError:
                log.exception("trigger loop: Redis error")
                self.rt.stop_event.wait(1.0)
            except Exception:
                log.exception("trigger loop failed")
                self.rt.stop_event.wait(1.0)

    def refresh(self, force: bool = False) -> None:
        if force or time.monotonic() - self._refreshed > REFRESH_S:
            self._definitions = [
                d for d in self.rt.definitions.find_active_definitions() if d.trigger.kind is not TriggerKind.MANUAL
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
        r = self.rt.client
        for stream in streams:
            if stream not in self._groups:
                try:
                    r.xgroup_create(stream, self.group, id="0", mkstream=True)
                except redis.ResponseError as exc:
                    if "BUSYGROUP" not in str(exc):
                        raise
                self._groups.add(stream)
        handled = 0
        for stream, definition in streams.items():
            # Redis 7 replies (next id, entries, deleted ids); Redis 6.2 (the embedded server) has no deleted ids.
            reply = r.xautoclaim(stream, self.group, self.rt.name, CLAIM_IDLE_MS, "0-0", count=50)
            for entry_id, fields in reply[1] or []:
                handled += self._start_from_entry(stream, definition, entry_id, fields)
        rows = r.xreadgroup(self.group, self.rt.name, {s: ">" for s in streams}, count=100, block=BLOCK_MS)
        for stream, entries in rows or []:
            for entry_id, fields in entries:
                handled += self._start_from_entry(stream, streams[stream], entry_id, fields)
        return handled

    def _start_from_entry(self, stream: str, definition: WorkflowDefinition, entry_id: str, fields: dict) -> int:
        if fields is None:  # entry deleted meanwhile
            self.rt.client.xack(stream, self.group, entry_id)
            return 0
        try:
            self.rt.service.start_saga(
                definition,
                entry_input(fields),
                correlation_id=fields.get("correlation_id"),
                idempotency_key=f"trigger:{stream}:{entry_id}",
                security={"principal": f"trigger:event:{stream}"},
            )
        except EngineError as exc:
            # Bad input is not retried forever: acknowledged and logged with the reason.
            log.warning("event %s on %s did not start %s: %s", entry_id, stream, definition.name, exc)
        self.rt.client.xack(stream, self.group, entry_id)
        return 1

    def fire_schedules(self, now: float) -> int:
        fired = 0
        for d in self._definitions:
            if d.trigger.kind is not TriggerKind.SCHEDULE or not d.trigger.cron:
                continue
            key = self.rt.dispatch.keys.cron_last(d.definition_id)
            r = self.rt.client
            last_raw = r.get(key)
            if last_raw is None:
                # First sight: schedule from now on, no backfill of fires before the definition existed.
                r.set(key, now, nx=True)
                continue
            nxt = croniter(d.trigger.cron, datetime.fromtimestamp(float(last_raw), UTC)).get_next(float)
            if nxt > now:
                continue
            self.rt.service.start_saga(
                d,
                dict(d.trigger.input),
                correlation_id=f"cron:{d.name}:{int(nxt)}",
                idempotency_key=f"cron:{d.definition_id}:{int(nxt)}",
                security={"principal": "trigger:schedule"},
            )
            r.set(key, nxt)
            fired += 1
        return fired
