"""Reading domain events from Redis streams: the global feed (every workflow, plus breaker events) or
one workflow's own stream. ``recent`` pages (sync, for JSON endpoints); ``follow`` blocks on XREAD
(async, for Server-Sent Events)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Collection, Mapping
from typing import Any

import redis
import redis.asyncio as aioredis

BATCH = 200


def parse(entry_id: str, fields: Mapping[str, str], workflow_id: str | None = None) -> dict[str, Any]:
    raw = fields.get("d")
    try:
        data = json.loads(raw) if raw else {}
    except ValueError:
        data = {"raw": raw}
    if not isinstance(data, dict):
        data = {"value": data}
    wf = fields.get("wf", workflow_id) or data.get("workflow_id") or None
    at = data.get("at")
    return {
        "id": entry_id,
        "workflow_id": wf,
        "version": int(fields.get("v", 0) or 0),
        "type": fields.get("t", ""),
        "at": float(at) if isinstance(at, int | float) else None,
        "data": data,
    }


def _wanted(event: dict[str, Any], workflow_id: str | None, types: Collection[str]) -> bool:
    if workflow_id is not None and event["workflow_id"] != workflow_id:
        return False
    return not types or event["type"] in types


def recent(
    r: redis.Redis,
    stream: str,
    *,
    after: str | None,
    limit: int,
    workflow_id: str | None = None,
    types: Collection[str] = (),
    scan_limit: int = 10_000,
) -> tuple[list[dict[str, Any]], str | None]:
    """Events after ``after`` (oldest first), or the newest ``limit`` without it. Returns the events
    and the id to pass as ``after`` next (the last entry looked at, even when filtered out)."""
    if after is None:
        out: list[dict[str, Any]] = []
        upper, scanned, newest = "+", 0, None
        while len(out) < limit and scanned < scan_limit:
            rows = r.xrevrange(stream, max=upper, min="-", count=BATCH)
            if not rows:
                break
            newest = newest or rows[0][0]
            for entry_id, fields in rows:
                scanned += 1
                event = parse(entry_id, fields, workflow_id)
                if _wanted(event, workflow_id, types):
                    out.append(event)
                    if len(out) == limit:
                        break
            upper = f"({rows[-1][0]}"
        return list(reversed(out)), newest
    out = []
    lower, scanned, last = f"({after}", 0, after
    while len(out) < limit and scanned < scan_limit:
        rows = r.xrange(stream, min=lower, max="+", count=BATCH)
        if not rows:
            break
        for entry_id, fields in rows:
            scanned += 1
            last = entry_id
            event = parse(entry_id, fields, workflow_id)
            if _wanted(event, workflow_id, types):
                out.append(event)
                if len(out) == limit:
                    break
        lower = f"({last}"
    return out, last


async def follow(
    ar: aioredis.Redis,
    stream: str,
    *,
    last_id: str,
    block_ms: int,
    workflow_id: str | None = None,
    types: Collection[str] = (),
    stop: Callable[[], bool] = lambda: False,
) -> AsyncIterator[dict[str, Any] | None]:
    """Events after ``last_id`` (``$``: only new ones) as they arrive; yields None after each idle
    wait so the caller can check on its client."""
    if last_id == "$":
        newest = await ar.xrevrange(stream, count=1)
        last_id = newest[0][0] if newest else "0-0"
    while not stop():
        reply = await ar.xread({stream: last_id}, count=BATCH, block=block_ms)
        if not reply:
            yield None
            continue
        for _name, rows in reply:
            for entry_id, fields in rows:
                last_id = entry_id
                event = parse(entry_id, fields, workflow_id)
                if _wanted(event, workflow_id, types):
                    yield event
