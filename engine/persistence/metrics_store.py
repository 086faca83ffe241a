"""What the Prometheus metrics keep in Redis, and what the scrape-time collector reads there that no
other store offers.

The cumulative hash (``Keys.metrics``): every worker and client adds its counters and fixed-bucket
histograms to it at each flush; it is never reset, so the counters are monotonic across processes and
hosts. Fields as :mod:`engine.persistence.series_fields` encodes them. The live reads (schedule and
attention backlog, workflows that may be past their deadline, breakers, health and in-flight calls of
configured instances) each take one pipelined round trip, O(series), never O(workflows).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
import redis

from engine.persistence import series_fields
from engine.persistence.keys import Keys
from engine.stats import Totals


@dataclass(frozen=True)
class Backlog:
    attention: int
    """Workflows that need an operator."""
    runnable: int
    """Workflows due now and not claimed: fresh starts (``ready``) and scheduled ones due."""
    scheduled: int
    """Live workflows on the schedule (fresh, runnable, waiting, or held)."""
    oldest_due_ms: float | None
    """When the first workflow on the schedule is (or was) due (a fresh start: its creation); None when
    the schedule is empty."""


@dataclass(frozen=True)
class BreakerRecord:
    """A service's circuit breaker hash as the BREAKER_* scripts keep it (missing fields: defaults)."""

    state: str = "CLOSED"
    open_until_ms: int = 0
    forced: str = ""
    trips: int = 0
    calls: int = 0
    failures: int = 0


@dataclass(frozen=True)
class ServiceReading:
    breaker: BreakerRecord
    health: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Instance id -> its last health check ({status, latency_ms, ...}); {} when unreadable."""
    in_flight: dict[str, int] = field(default_factory=dict)
    """Instance id -> calls in flight now."""


class MetricsStore:
    def __init__(self, client: redis.Redis, keys: Keys):
        self.r = client
        self.keys = keys

    # ------------------------------------------------------------------ cumulative hash
    def add(self, totals: Totals) -> int:
        """Add ``totals`` to the cumulative hash (one pipelined round trip). Returns the number of
        fields written. On a Redis error the increments are lost, never applied twice."""
        fields = list(series_fields.increments(totals))
        if not fields:
            return 0
        pipe = self.r.pipeline(transaction=False)
        for name, value in fields:
            if isinstance(value, float):
                pipe.hincrbyfloat(self.keys.metrics, name, value)
            else:
                pipe.hincrby(self.keys.metrics, name, value)
        pipe.execute()
        return len(fields)

    def totals(self) -> Totals:
        """Everything every process added so far."""
        return series_fields.decode(self.r.hgetall(self.keys.metrics))

    # ------------------------------------------------------------------ live state
    def backlog(self, now_ms: int) -> Backlog:
        k = self.keys
        pipe = self.r.pipeline(transaction=False)
        pipe.zcard(k.attention)
        pipe.zcount(k.sched, "-inf", now_ms)
        pipe.zcard(k.sched)
        pipe.zrange(k.sched, 0, 0, withscores=True)
        pipe.zcard(k.ready)
        pipe.zrange(k.ready, 0, 0, withscores=True)
        attention, due, scheduled, first_due, fresh, first_fresh = pipe.execute()
        firsts = [float(first[0][1]) for first in (first_due, first_fresh) if first]
        return Backlog(int(attention), int(due) + int(fresh), int(scheduled) + int(fresh), min(firsts, default=None))

    def deadlines(self, statuses: Sequence[str], created_before_ms: int, limit: int) -> dict[str, list[float]]:
        """Per status, the deadlines (epoch s) of its oldest workflows created before ``created_before_ms``
        (at most ``limit`` of each) still in that status; a workflow without a readable deadline is left
        out. Two round trips."""
        pipe = self.r.pipeline(transaction=False)
        for status in statuses:
            pipe.zrangebyscore(self.keys.by_status(status), "-inf", created_before_ms, start=0, num=limit)
        ids = [(status, wid) for status, found in zip(statuses, pipe.execute(), strict=True) for wid in found]
        out: dict[str, list[float]] = {status: [] for status in statuses}
        if not ids:
            return out
        pipe = self.r.pipeline(transaction=False)
        for _, wid in ids:
            pipe.hmget(self.keys.state(wid), "status", "snap")
        for (status, _), (current, snap) in zip(ids, pipe.execute(), strict=True):
            if current != status or not snap:
                continue  # it moved on since the index was read
            try:
                out[status].append(float(orjson.loads(snap)["time_constraints"]["deadline"]))
            except (ValueError, KeyError, TypeError):
                continue
        return out

    def services(self, instances: Mapping[str, Sequence[str]], now_ms: int) -> dict[str, ServiceReading]:
        """Breaker, health checks and calls in flight of each service's instances (service -> instance
        ids), in one round trip."""
        names = list(instances)
        if not names:
            return {}
        pipe = self.r.pipeline(transaction=False)
        for name in names:
            pipe.hgetall(self.keys.breaker(name))
            pipe.hgetall(self.keys.service_health(name))
            for iid in instances[name]:
                pipe.zcount(self.keys.in_flight(name, iid), now_ms, "+inf")
        replies = iter(pipe.execute())
        out = {}
        for name in names:
            breaker, health = next(replies), next(replies)
            out[name] = ServiceReading(
                BreakerRecord(
                    state=breaker.get("state") or "CLOSED",
                    open_until_ms=_int(breaker.get("open_until")),
                    forced=breaker.get("forced") or "",
                    trips=_int(breaker.get("trips")),
                    calls=_int(breaker.get("calls")),
                    failures=_int(breaker.get("failures")),
                ),
                {iid: _json(raw) for iid, raw in health.items()},
                {iid: int(next(replies)) for iid in instances[name]},
            )
        return out


def _int(raw: Any) -> int:
    try:
        return int(float(raw))
    except (TypeError, ValueError, OverflowError):
        return 0


def _json(raw: Any) -> dict[str, Any]:
    if not raw:
        return {}
    try:
        data = orjson.loads(raw)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}
