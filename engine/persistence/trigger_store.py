"""What event and schedule triggers read and write: the definitions' event streams, consumed by a
consumer group shared by the workers, and the last fire time of each schedule."""

from __future__ import annotations

from collections.abc import Iterable

import redis

from engine.persistence.keys import Keys

StreamEntry = tuple[str, str, dict[str, str] | None]
"""(stream, entry id, fields); fields are None for an entry deleted after it was delivered."""


class TriggerStore:
    def __init__(self, client: redis.Redis, keys: Keys, group: str):
        self.r = client
        self.keys = keys
        self.group = group
        self._groups: set[str] = set()

    # ------------------------------------------------------------------ event streams
    def ensure_group(self, stream: str) -> None:
        if stream in self._groups:
            return
        try:
            self.r.xgroup_create(stream, self.group, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._groups.add(stream)

    def claim_stale(self, stream: str, consumer: str, min_idle_ms: int, count: int = 50) -> list[StreamEntry]:
        """Entries delivered to a consumer that never acknowledged them (it died), now this one's."""
        # Redis 7 replies (next id, entries, deleted ids); Redis 6.2 (the embedded server) has no deleted ids.
        reply = self.r.xautoclaim(stream, self.group, consumer, min_idle_ms, "0-0", count=count)
        return [(stream, entry_id, fields) for entry_id, fields in reply[1] or []]

    def read_new(self, streams: Iterable[str], consumer: str, count: int, block_ms: int) -> list[StreamEntry]:
        rows = self.r.xreadgroup(self.group, consumer, {s: ">" for s in streams}, count=count, block=block_ms)
        return [(stream, entry_id, fields) for stream, entries in rows or [] for entry_id, fields in entries]

    def ack(self, stream: str, entry_id: str) -> None:
        self.r.xack(stream, self.group, entry_id)

    # ------------------------------------------------------------------ schedules
    def last_fire(self, definition_id: str) -> float | None:
        raw = self.r.get(self.keys.cron_last(definition_id))
        return None if raw is None else float(raw)

    def first_sight(self, definition_id: str, now: float) -> None:
        """Schedule from now on: no backfill of fires before the definition existed."""
        self.r.set(self.keys.cron_last(definition_id), now, nx=True)

    def fired(self, definition_id: str, at: float) -> None:
        self.r.set(self.keys.cron_last(definition_id), at)
