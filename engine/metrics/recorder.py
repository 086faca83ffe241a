"""The recorder workers and clients feed: folds raw samples into the catalogue's fixed-bucket
histograms and counters, and hands them over as data at each flush (``engine.persistence.metrics_store``
adds them to the cumulative hash in Redis). No I/O here."""

from __future__ import annotations

import bisect
import threading
from collections import defaultdict
from collections.abc import Sequence

from engine.metrics.catalogue import COUNTERS, HISTOGRAMS
from engine.stats import Series, Tally, Totals


class MetricsRecorder:
    """The :class:`engine.stats.StatsRecorder` sink: folds samples into fixed-bucket histograms and
    counters until :meth:`drain` hands them over."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._buckets: dict[Series, list[int]] = {}
        self._sums: dict[Series, float] = defaultdict(float)
        self._counters: dict[Series, int] = defaultdict(int)

    def fold(self, samples: Sequence[tuple[str, float, tuple[str, ...]]], counts: Sequence[tuple[Series, int]]) -> None:
        with self._lock:
            buckets, sums = self._buckets, self._sums
            for name, seconds, labels in samples:
                spec = HISTOGRAMS.get(name)
                if spec is None or len(labels) != len(spec.labels):
                    continue
                key = Series(name, labels)
                row = buckets.get(key)
                if row is None:
                    row = buckets[key] = [0] * (len(spec.buckets) + 1)
                # le is inclusive: the first bound >= the value (past the last one: +Inf)
                row[bisect.bisect_left(spec.buckets, seconds)] += 1
                sums[key] += seconds
            for series, n in counts:
                # Only the families exported as Prometheus counters: the rollup-only ones (per-service
                # call outcomes) stay out of the cumulative hash, where nothing reads them.
                if series.name in COUNTERS:
                    self._counters[series] += n

    def drain(self) -> Totals:
        """What was folded since the last drain: the increments of the cumulative totals."""
        with self._lock:
            buckets, sums, counters = self._buckets, self._sums, self._counters
            self._buckets, self._sums, self._counters = {}, defaultdict(float), defaultdict(int)
        return Totals(
            counters={series: n for series, n in counters.items() if n},
            histograms={
                series: Tally({i: n for i, n in enumerate(row) if n}, sums[series]) for series, row in buckets.items()
            },
        )


def recorder_for(enabled: bool) -> MetricsRecorder | None:
    return MetricsRecorder() if enabled else None
