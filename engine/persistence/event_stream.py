"""Domain events as Redis streams hold them, and the live feed that reads them.

Every workflow's own stream has entries ``v`` (version), ``t`` (event type), ``d`` (the event's fields
as JSON); the global feed has the same plus ``wf`` (the workflow id; empty for breaker events, whose
``d`` names the service). :func:`decode_entry` is the one reader of that format: the workflow
repository rebuilds events from it and :class:`EventFeed` serves it to the control API.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
import redis
import redis.asyncio as aioredis

from engine.domain.events import DomainEvent, event_from_dict
from engine.persistence.keys import Keys

BATCH = 200
SCAN_LIMIT = 10_000
"""A filtered page looks at most this many entries."""


@dataclass(frozen=True, slots=True)
class StreamEntry:
    id: str
    """The stream entry id (the feed's cursor)."""
    workflow_id: str | None
    version: int
    type: str
    at: float | None
    data: dict[str, Any]
    """The event's fields (``{"raw": ...}`` for an entry that is not JSON)."""

    def event(self) -> DomainEvent:
        return event_from_dict({**self.data, "type": self.type})

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "workflow_id": self.workflow_id,
            "version": self.version,
            "type": self.type,
            "at": self.at,
            "data": self.data,
        }


def decode_entry(entry_id: str, fields: Mapping[str, str], workflow_id: str | None = None) -> StreamEntry:
    """One stream entry; ``workflow_id`` is the stream's own workflow (entries of a workflow's stream
    do not repeat it)."""
    raw = fields.get("d")
    try:
        data = orjson.loads(raw) if raw else {}
    except orjson.JSONDecodeError:
        data = {"raw": raw}
    if not isinstance(data, dict):
        data = {"value": data}
    at = data.get("at")
    return StreamEntry(
        entry_id,
        fields.get("wf", workflow_id) or data.get("workflow_id") or None,
        int(fields.get("v", 0) or 0),
        fields.get("t", ""),
        float(at) if isinstance(at, int | float) else None,
        data,
    )


class EventFeed:
    """The global feed (every workflow, plus breaker events) or one workflow's stream: ``recent`` pages
    (sync, for JSON endpoints), ``follow`` blocks on XREAD (async, for Server-Sent Events)."""

    def __init__(self, client: redis.Redis, aclient: aioredis.Redis, keys: Keys):
        self.r, self.ar, self.keys = client, aclient, keys

    def _stream(self, workflow_id: str | None) -> str:
        return self.keys.feed if workflow_id is None else self.keys.events(workflow_id)

    async def workflow_exists(self, workflow_id: str) -> bool:
        return bool(await self.ar.exists(self.keys.state(workflow_id)))

    def recent(
        self,
        workflow_id: str | None = None,
        *,
        after: str | None,
        limit: int,
        types: Collection[str] = (),
        scan_limit: int = SCAN_LIMIT,
    ) -> tuple[list[StreamEntry], str | None]:
        """Events after ``after`` (oldest first), or the newest ``limit`` without it. Returns the events
        and the id to pass as ``after`` next (the last entry looked at, even when filtered out)."""
        stream = self._stream(workflow_id)
        backwards = after is None  # the newest first, reversed at the end
        bound = "+" if backwards else f"({after}"
        resume = after
        out: list[StreamEntry] = []
        scanned = 0
        while len(out) < limit and scanned < scan_limit:
            if backwards:
                rows = self.r.xrevrange(stream, max=bound, min="-", count=BATCH)
            else:
                rows = self.r.xrange(stream, min=bound, max="+", count=BATCH)
            if not rows:
                break
            if backwards:
                resume = resume or rows[0][0]
            for entry_id, fields in rows:
                scanned += 1
                if not backwards:
                    resume = entry_id
                entry = decode_entry(entry_id, fields, workflow_id)
                if not types or entry.type in types:
                    out.append(entry)
                    if len(out) == limit:
                        break
            bound = f"({rows[-1][0]}"
        return (out[::-1] if backwards else out), resume

    async def follow(
        self,
        workflow_id: str | None = None,
        *,
        last_id: str,
        block_ms: int,
        types: Collection[str] = (),
        stop: Callable[[], bool] = lambda: False,
    ) -> AsyncIterator[StreamEntry | None]:
        """Events after ``last_id`` (``$``: only new ones) as they arrive; yields None after each idle
        wait so the caller can check on its client."""
        stream = self._stream(workflow_id)
        if last_id == "$":
            newest = await self.ar.xrevrange(stream, count=1)
            last_id = newest[0][0] if newest else "0-0"
        while not stop():
            reply = await self.ar.xread({stream: last_id}, count=BATCH, block=block_ms)
            if not reply:
                yield None
                continue
            for _name, rows in reply:
                for entry_id, fields in rows:
                    last_id = entry_id
                    entry = decode_entry(entry_id, fields, workflow_id)
                    if not types or entry.type in types:
                        yield entry
