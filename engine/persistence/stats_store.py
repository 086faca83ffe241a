"""Per-interval rollups of worker stats in Redis, with bounded retention."""

from __future__ import annotations

from collections import defaultdict

import redis

from engine.persistence.keys import Keys
from engine.stats import LogHistogram

INTERVAL_S = 10
RETENTION_S = 2 * 24 * 3600


class StatsStore:
    def __init__(self, client: redis.Redis, prefix: str):
        self.r = client
        self.keys = Keys(prefix)

    def flush(self, now_s: float, hist: dict[str, LogHistogram], counters: dict[str, int]) -> None:
        if not hist and not counters:
            return
        start = int(now_s) // INTERVAL_S * INTERVAL_S
        key = self.keys.stats(start)
        pipe = self.r.pipeline(transaction=False)
        for metric, h in hist.items():
            for b, n in h.buckets.items():
                pipe.hincrby(key, f"h|{metric}|{b}", n)
            pipe.hincrbyfloat(key, f"s|{metric}", h.total)
        for name, n in counters.items():
            pipe.hincrby(key, f"c|{name}", n)
        pipe.expire(key, RETENTION_S)
        pipe.zadd(self.keys.stats_index, {str(start): start})
        pipe.zremrangebyscore(self.keys.stats_index, "-inf", start - RETENTION_S)
        pipe.execute()

    def read(self, since_s: float, until_s: float | None = None) -> tuple[dict[str, LogHistogram], dict[str, int]]:
        """Merged histograms and counters of every interval starting in [since - interval, until]."""
        hist: dict[str, LogHistogram] = defaultdict(LogHistogram)
        counters: dict[str, int] = defaultdict(int)
        for _start, h, c in self.series(since_s, until_s):
            for metric, one in h.items():
                hist[metric].merge(one)
            for name, n in c.items():
                counters[name] += n
        return dict(hist), dict(counters)

    def series(
        self, since_s: float, until_s: float | None = None
    ) -> list[tuple[int, dict[str, LogHistogram], dict[str, int]]]:
        """Each interval starting in [since - interval, until] on its own, oldest first."""
        starts = [
            int(s)
            for s in self.r.zrangebyscore(
                self.keys.stats_index, int(since_s) // INTERVAL_S * INTERVAL_S, "+inf" if until_s is None else until_s
            )
        ]
        pipe = self.r.pipeline(transaction=False)
        for s in starts:
            pipe.hgetall(self.keys.stats(s))
        return [(start, *_parse(row)) for start, row in zip(starts, pipe.execute(), strict=True)]


def _parse(row: dict[str, str]) -> tuple[dict[str, LogHistogram], dict[str, int]]:
    """One interval's hash: ``h|<metric>|<bucket>`` counts, ``s|<metric>`` sums, ``c|<name>`` counters."""
    hist: dict[str, dict[int, int]] = {}
    totals: dict[str, float] = {}
    counters: dict[str, int] = {}
    for field, value in row.items():
        kind, _, rest = field.partition("|")
        if kind == "h":
            metric, _, b = rest.rpartition("|")
            hist.setdefault(metric, {})[int(b)] = int(value)
        elif kind == "s":
            totals[rest] = float(value)
        elif kind == "c":
            counters[rest] = int(value)
    return {m: LogHistogram.from_counts(c, totals.get(m, 0.0)) for m, c in hist.items()}, counters
