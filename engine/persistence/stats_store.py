"""Per-interval rollups of worker stats in Redis, with bounded retention."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping

import redis

from engine.persistence import series_fields
from engine.persistence.keys import Keys
from engine.stats import LogHistogram, Series, Tally, Totals

INTERVAL_S = 10
RETENTION_S = 2 * 24 * 3600


class StatsStore:
    def __init__(self, client: redis.Redis, prefix: str):
        self.r = client
        self.keys = Keys(prefix)

    def flush(self, now_s: float, hist: Mapping[str, LogHistogram], counters: Mapping[Series, int]) -> None:
        if not hist and not counters:
            return
        start = int(now_s) // INTERVAL_S * INTERVAL_S
        key = self.keys.stats(start)
        totals = Totals(
            counters=dict(counters),
            histograms={Series(metric): Tally(dict(h.buckets), h.total) for metric, h in hist.items()},
        )
        pipe = self.r.pipeline(transaction=False)
        for field, value in series_fields.increments(totals):
            if isinstance(value, float):
                pipe.hincrbyfloat(key, field, value)
            else:
                pipe.hincrby(key, field, value)
        pipe.expire(key, RETENTION_S)
        pipe.zadd(self.keys.stats_index, {str(start): start})
        pipe.zremrangebyscore(self.keys.stats_index, "-inf", start - RETENTION_S)
        pipe.execute()

    def read(self, since_s: float, until_s: float | None = None) -> tuple[dict[str, LogHistogram], dict[Series, int]]:
        """Merged histograms and counters of every interval starting in [since - interval, until]."""
        hist: dict[str, LogHistogram] = defaultdict(LogHistogram)
        counters: dict[Series, int] = defaultdict(int)
        for _start, h, c in self.series(since_s, until_s):
            for metric, one in h.items():
                hist[metric].merge(one)
            for series, n in c.items():
                counters[series] += n
        return dict(hist), dict(counters)

    def series(
        self, since_s: float, until_s: float | None = None
    ) -> list[tuple[int, dict[str, LogHistogram], dict[Series, int]]]:
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


def _parse(row: Mapping[str, str]) -> tuple[dict[str, LogHistogram], dict[Series, int]]:
    """One interval's hash: log-bucket histograms by sample name (rollups keep no labels on them) and
    counters by series."""
    totals = series_fields.decode(row)
    hist = {
        series.name: LogHistogram.from_counts(tally.buckets, tally.total)
        for series, tally in totals.histograms.items()
        if tally.buckets
    }
    return hist, {series: int(n) for series, n in totals.counters.items()}
