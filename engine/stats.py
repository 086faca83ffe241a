"""Latency histograms and counters kept in-process and merged across workers through Redis.

Log-scale buckets 5 % wide give quantiles within a few percent at any scale, from microseconds
to minutes, in a bounded number of buckets. Pure: no Redis here.
"""

from __future__ import annotations

import math
import threading
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

_BASE = math.log(1.05)
_MIN = 1e-6  # one microsecond


def bucket_of(seconds: float) -> int:
    if seconds <= _MIN:
        return 0
    return int(math.log(seconds / _MIN) / _BASE) + 1


def bucket_upper(index: int) -> float:
    return _MIN * math.exp(index * _BASE)


class LogHistogram:
    __slots__ = ("buckets", "count", "total")

    def __init__(self) -> None:
        self.buckets: dict[int, int] = defaultdict(int)
        self.count = 0
        self.total = 0.0

    def observe(self, seconds: float) -> None:
        self.buckets[bucket_of(seconds)] += 1
        self.count += 1
        self.total += seconds

    def merge(self, other: LogHistogram) -> None:
        for b, n in other.buckets.items():
            self.buckets[b] += n
        self.count += other.count
        self.total += other.total

    def quantile(self, q: float) -> float | None:
        if not self.count:
            return None
        rank = q * self.count
        seen = 0
        for b in sorted(self.buckets):
            seen += self.buckets[b]
            if seen >= rank:
                return bucket_upper(b)
        return bucket_upper(max(self.buckets))

    def fraction_at_most(self, seconds: float) -> float | None:
        """Share of observations at or below ``seconds`` (SLA compliance)."""
        if not self.count:
            return None
        limit = bucket_of(seconds)
        return sum(n for b, n in self.buckets.items() if b <= limit) / self.count

    @classmethod
    def from_counts(cls, counts: Mapping[int, int], total: float = 0.0) -> LogHistogram:
        h = cls()
        for b, n in counts.items():
            h.buckets[int(b)] += int(n)
            h.count += int(n)
        h.total = total
        return h


class Series(NamedTuple):
    """A counter or histogram series: the family's name and its label values, kept as data. Only
    ``engine.persistence`` turns it into a stored field (``steps|order|charge|failed``) and back."""

    name: str
    labels: tuple[str, ...] = ()


@dataclass
class Tally:
    """Observations per bucket index of a histogram series, and their sum."""

    buckets: dict[int, int] = field(default_factory=dict)
    total: float = 0.0


@dataclass
class Totals:
    """Counters and fixed-bucket histograms by series: what one flush adds to the cumulative metrics
    (engine.metrics' recorder), or what every flush added up to (read back at scrape time)."""

    counters: dict[Series, float] = field(default_factory=dict)
    histograms: dict[Series, Tally] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.counters or self.histograms)


class SampleSink(Protocol):
    """Receives every batch of raw samples and counts as it is folded (engine.metrics' recorder)."""

    def fold(
        self, samples: Sequence[tuple[str, float, tuple[str, ...]]], counts: Sequence[tuple[Series, int]]
    ) -> None: ...


class StatsRecorder:
    """Cheap to record on the hot path: an append (atomic under the GIL); bucketing happens when
    ``drain()`` hands over what was recorded.

    ``labels`` of an observation (workflow type, step...) are ignored by the log histograms here and
    passed on, with every counter, to ``sink`` when one is attached (the Prometheus metrics)."""

    FOLD_AT = 10_000
    """Samples kept raw before they are folded into histograms, so memory stays bounded when
    nobody drains (a client that only starts workflows)."""

    def __init__(self, sink: SampleSink | None = None) -> None:
        self._samples: list[tuple[str, float, tuple[str, ...]]] = []
        self._counts: list[tuple[str, tuple[str, ...], int]] = []
        self._lock = threading.Lock()
        self._hist: dict[str, LogHistogram] = defaultdict(LogHistogram)
        self._counters: dict[Series, int] = defaultdict(int)
        self.sink = sink

    def observe(self, metric: str, seconds: float, labels: tuple[str, ...] = ()) -> None:
        self._samples.append((metric, seconds, labels))
        if len(self._samples) > self.FOLD_AT:
            self._fold()

    def incr(self, counter: str, labels: tuple[str, ...] = (), n: int = 1) -> None:
        """Count ``n`` of ``counter`` (a family of engine.metrics' COUNTERS, or of its ROLLUP_COUNTERS)
        for these label values."""
        self._counts.append((counter, labels, n))
        if len(self._counts) > self.FOLD_AT:
            self._fold()

    def _fold(self) -> None:
        with self._lock:
            samples, self._samples = self._samples, []
            raw, self._counts = self._counts, []
            for metric, seconds, _labels in samples:
                self._hist[metric].observe(seconds)
            counts = [(Series(name, labels), n) for name, labels, n in raw]
            for series, n in counts:
                self._counters[series] += n
            if self.sink is not None and (samples or counts):
                self.sink.fold(samples, counts)

    def drain(self) -> tuple[dict[str, LogHistogram], dict[Series, int]]:
        self._fold()
        with self._lock:
            hist, counters = self._hist, self._counters
            self._hist, self._counters = defaultdict(LogHistogram), defaultdict(int)
        return dict(hist), dict(counters)


def merge_all(histograms: Iterable[LogHistogram]) -> LogHistogram:
    out = LogHistogram()
    for h in histograms:
        out.merge(h)
    return out
