"""``engine.stats``: log-bucket histograms (quantiles, SLA fraction, merge)."""

from __future__ import annotations

import math
import random

import pytest

from engine.persistence import series_fields
from engine.stats import LogHistogram, Series, StatsRecorder, Tally, Totals, bucket_of, bucket_upper, merge_all

TOLERANCE = 0.05 + 1e-9


def exact_quantile(values: list[float], q: float) -> float:
    """Nearest-rank quantile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def histogram(values) -> LogHistogram:
    h = LogHistogram()
    for v in values:
        h.observe(v)
    return h


UNIFORM = [i / 1000 for i in range(1, 10_001)]  # 1 ms .. 10 s
_rng = random.Random(1234)
LOGNORMAL = [_rng.lognormvariate(math.log(0.02), 1.5) for _ in range(20_000)]  # µs .. minutes
QUANTILES = [0.01, 0.25, 0.5, 0.9, 0.95, 0.99, 0.999, 1.0]


@pytest.mark.parametrize("q", QUANTILES)
@pytest.mark.parametrize("values", [UNIFORM, LOGNORMAL], ids=["uniform", "lognormal"])
def test_quantile_within_five_percent_of_exact(values, q) -> None:
    exact = exact_quantile(values, q)
    estimate = histogram(values).quantile(q)
    assert abs(estimate - exact) / exact <= TOLERANCE, (q, estimate, exact)


def test_quantile_never_underestimates_a_single_value() -> None:
    for v in [1e-5, 0.003, 0.25, 1.0, 42.0, 3600.0]:
        est = histogram([v]).quantile(0.99)
        assert v <= est <= v * 1.05 * (1 + 1e-9)


def test_empty_histogram_has_no_quantile_or_fraction() -> None:
    h = LogHistogram()
    assert h.quantile(0.5) is None
    assert h.fraction_at_most(1.0) is None


def test_count_and_total() -> None:
    h = histogram([0.1, 0.2, 0.3])
    assert h.count == 3
    assert h.total == pytest.approx(0.6)


@pytest.mark.parametrize(
    ("limit", "fraction"),
    [(0.001, 0.0), (0.010, 0.3), (0.05, 0.3), (0.1, 1.0), (1.0, 1.0)],
)
def test_fraction_at_most(limit, fraction) -> None:
    h = histogram([0.010] * 30 + [0.100] * 70)
    assert h.fraction_at_most(limit) == pytest.approx(fraction)


def test_fraction_at_most_on_a_known_distribution() -> None:
    h = histogram(UNIFORM)
    # exact share of values <= 1 s is 10 %; the bucket holding 1 s is at most 5 % wide
    assert 0.10 <= h.fraction_at_most(1.0) <= 0.10 * 1.05 + 1e-9


def test_tiny_and_zero_values_land_in_the_first_bucket() -> None:
    assert bucket_of(0.0) == bucket_of(-1.0) == bucket_of(1e-6) == 0
    assert bucket_upper(0) == pytest.approx(1e-6)


def test_bucket_upper_bounds_its_values() -> None:
    for v in [2e-6, 0.001, 0.0123, 1.0, 59.9, 1800.0]:
        b = bucket_of(v)
        assert bucket_upper(b - 1) < v <= bucket_upper(b) * (1 + 1e-12)


def test_merge_equals_one_histogram_of_everything() -> None:
    whole = histogram(LOGNORMAL)
    first, second = histogram(LOGNORMAL[:7000]), histogram(LOGNORMAL[7000:])
    first.merge(second)
    assert dict(first.buckets) == dict(whole.buckets)
    assert first.count == whole.count
    assert first.total == pytest.approx(whole.total)
    assert [first.quantile(q) for q in QUANTILES] == [whole.quantile(q) for q in QUANTILES]


def test_merge_all_and_from_counts() -> None:
    parts = [histogram(LOGNORMAL[i::4]) for i in range(4)]
    merged = merge_all(parts)
    assert merged.count == len(LOGNORMAL)
    rebuilt = LogHistogram.from_counts({str(b): n for b, n in merged.buckets.items()}, merged.total)
    assert rebuilt.count == merged.count
    assert rebuilt.quantile(0.99) == merged.quantile(0.99)


def test_merge_leaves_the_other_histogram_alone() -> None:
    a, b = histogram([0.1]), histogram([0.2, 0.3])
    a.merge(b)
    assert (b.count, dict(b.buckets)) == (2, dict(histogram([0.2, 0.3]).buckets))


def test_recorder_drain_hands_over_and_resets() -> None:
    rec = StatsRecorder()
    rec.observe("step_execution", 0.01)
    rec.observe("step_execution", 0.02)
    rec.incr("steps", ("x", "completed"))
    rec.incr("steps", ("x", "completed"), 2)
    rec.incr("workflows_started")
    hist, counters = rec.drain()
    assert hist["step_execution"].count == 2
    assert counters == {Series("steps", ("x", "completed")): 3, Series("workflows_started"): 1}
    assert rec.drain() == ({}, {})


def test_series_are_encoded_as_the_fields_dashboards_and_the_api_read() -> None:
    totals = Totals(
        counters={Series("steps", ("order", "charge", "failed")): 2, Series("workflows_started", ("order",)): 1},
        histograms={
            Series("step_execution", ("order", "charge")): Tally({0: 1, 7: 2}, 0.5),
            Series("x"): Tally({3: 1}, 1.0),
        },
    )
    fields = dict(series_fields.increments(totals))
    assert fields == {
        "c|steps|order|charge|failed": 2,
        "c|workflows_started|order": 1,
        "h|step_execution|order|charge|0": 1,
        "h|step_execution|order|charge|7": 2,
        "s|step_execution|order|charge": 0.5,
        "h|x|3": 1,
        "s|x": 1.0,
    }
    assert isinstance(fields["s|x"], float) and isinstance(fields["h|x|3"], int)
    assert series_fields.decode({k: str(v) for k, v in fields.items()}) == totals


def test_decoding_skips_malformed_fields_and_reads_bad_values_as_zero() -> None:
    decoded = series_fields.decode(
        {"c|": "1", "h|x|notanumber": "4", "h|x": "4", "q|x|1": "1", "c|a|b": "garbage", "h|y|2": "nan", "s|y": "2.5"}
    )
    assert decoded.counters == {Series("a", ("b",)): 0.0}
    assert decoded.histograms == {Series("y"): Tally({2: 0}, 2.5)}
