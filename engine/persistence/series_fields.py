"""The one encoding of counter and histogram series as fields of a Redis hash, shared by the 10-second
stats rollups (:mod:`engine.persistence.stats_store`) and the cumulative Prometheus hash
(:mod:`engine.persistence.metrics_store`); dashboards and the API read both, so the format is fixed:

- ``c|<name>|<label>...``: a counter;
- ``h|<name>|<label>...|<bucket index>``: the observations of a histogram bucket;
- ``s|<name>|<label>...``: the sum of a histogram's observations.

Label values never contain ``|`` (definition names, step ids and service names are validated); a field
that does not parse is skipped when read.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from engine.stats import Series, Tally, Totals

SEP = "|"
COUNTER, BUCKET, SUM = "c", "h", "s"


def counter_field(series: Series) -> str:
    return SEP.join((COUNTER, series.name, *series.labels))


def bucket_field(series: Series, index: int) -> str:
    return SEP.join((BUCKET, series.name, *series.labels, str(index)))


def sum_field(series: Series) -> str:
    return SEP.join((SUM, series.name, *series.labels))


def increments(totals: Totals) -> Iterator[tuple[str, int | float]]:
    """The fields to add for ``totals``: counters and bucket counts as integers (HINCRBY), sums as
    floats (HINCRBYFLOAT)."""
    for series, tally in totals.histograms.items():
        for index, n in tally.buckets.items():
            yield bucket_field(series, index), int(n)
        yield sum_field(series), float(tally.total)
    for series, n in totals.counters.items():
        yield counter_field(series), int(n)


def decode(row: Mapping[str, Any]) -> Totals:
    """A hash of such fields back into series, read defensively: a malformed field is skipped, a value
    that is not a number reads as zero."""
    out = Totals()
    for field, value in row.items():
        kind, _, rest = field.partition(SEP)
        parts = rest.split(SEP)
        if not parts[0]:
            continue
        if kind == COUNTER:
            out.counters[Series(parts[0], tuple(parts[1:]))] = as_float(value)
        elif kind == BUCKET and len(parts) >= 2:
            try:
                index = int(parts[-1])
            except ValueError:
                continue
            tally = out.histograms.setdefault(Series(parts[0], tuple(parts[1:-1])), Tally())
            tally.buckets[index] = _count(value)
        elif kind == SUM:
            out.histograms.setdefault(Series(parts[0], tuple(parts[1:])), Tally()).total = as_float(value)
    return out


def _count(raw: Any) -> int:
    try:
        return int(float(raw))
    except (TypeError, ValueError, OverflowError):
        return 0


def as_float(raw: Any) -> float:
    """A stored number, tolerant: anything unreadable (or NaN) reads as 0."""
    try:
        value = float(raw)
    except (TypeError, ValueError):
        return 0.0
    return value if value == value else 0.0  # NaN reads as 0
