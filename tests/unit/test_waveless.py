"""The waveless control law, its bounds, the fixed-wave schedule, pins and order patterns
(``engine.domain.waveless``: pure, the clock passed in)."""

from __future__ import annotations

import pytest

from engine.domain.definition import parse_definition
from engine.domain.waveless import (
    ControlParams,
    ControlState,
    Mode,
    OrderPattern,
    Pattern,
    Pins,
    ProcessingStrategy,
    SystemLoad,
    TokenBucket,
    adjust_processing_rate,
    calculate_dynamic_batch_size,
    next_wave_at,
    release_quota,
    wave_due,
)
from engine.persistence.waveless_store import decode, decode_float, decode_int
from engine.saga.waveless_measurement import services_called
from sim.orders import generate_orders

P = ControlParams(min_batch=1, max_batch=40, max_rate=150.0, latency_sla_s=0.5, increase=2, decrease=0.7,
                  breaker_decrease=0.5, release_interval_s=0.1)  # fmt: skip


def load(**kw) -> SystemLoad:
    """Two workers of 10 slots (capacity 20 sagas); defaults: spare capacity, orders held back."""
    values = dict(queue_depth=50, in_flight=4, live_workers=2, worker_slots=10, latency_p95_s=0.02, batch_limited=True)
    values.update(kw)
    return SystemLoad(**values)


def state(batch: int) -> ControlState:
    return ControlState(batch, P.rate_for(batch))


# ---------------------------------------------------------------------------------------------- utilization
def test_utilization_is_the_larger_of_worker_slots_and_service_instances() -> None:
    assert load(in_flight=17).worker_utilization == pytest.approx(0.85)
    assert load(in_flight=5, service_utilization=0.6).utilization == pytest.approx(0.6)
    assert load(in_flight=19, service_utilization=0.6).utilization == pytest.approx(0.95)


def test_headroom_stops_releases_at_the_target() -> None:
    assert load(in_flight=0).headroom(0.85) == 17
    assert load(in_flight=16).headroom(0.85) == 1
    assert load(in_flight=17).headroom(0.85) == 0
    assert load(in_flight=30).headroom(0.85) == 0


# ---------------------------------------------------------------------------------------------- the law
def test_batch_grows_under_spare_capacity_when_it_holds_orders_back() -> None:
    size, reason = calculate_dynamic_batch_size(10, load(), P)
    assert size == 12
    assert "spare capacity" in reason


def test_batch_does_not_grow_when_it_is_not_the_limit() -> None:
    assert calculate_dynamic_batch_size(10, load(batch_limited=False), P)[0] == 10
    size, reason = calculate_dynamic_batch_size(10, load(batch_limited=False, queue_depth=0), P)
    assert size == 10
    assert "no orders waiting" in reason


def test_batch_shrinks_when_utilization_passes_85_percent() -> None:
    at_target = calculate_dynamic_batch_size(10, load(in_flight=17), P)[0]
    assert at_target == 12, "exactly at 85 % is not past it"
    size, reason = calculate_dynamic_batch_size(10, load(in_flight=18), P)
    assert size == 7
    assert "utilization 90%" in reason and "> target 85%" in reason


def test_batch_shrinks_when_a_service_instance_passes_85_percent() -> None:
    size, reason = calculate_dynamic_batch_size(10, load(service_utilization=0.9), P)
    assert size == 7
    assert "(services)" in reason


def test_batch_shrinks_when_step_latency_breaches_the_sla() -> None:
    size, reason = calculate_dynamic_batch_size(10, load(latency_p95_s=0.8), P)
    assert size == 7
    assert "p95 800 ms > SLA 500 ms" in reason
    assert calculate_dynamic_batch_size(10, load(latency_p95_s=0.5), P)[0] == 12, "at the SLA is within it"


def test_batch_halves_while_a_breaker_is_open_whatever_else_holds() -> None:
    size, reason = calculate_dynamic_batch_size(10, load(open_breakers=("payment",)), P)
    assert size == 5
    assert "breaker open (payment)" in reason


def test_bounds_hold_under_repeated_growth_and_shrinking() -> None:
    s = state(1)
    sizes = []
    for _ in range(100):
        s = adjust_processing_rate(s, load(), P)
        sizes.append(s.batch_size)
    assert max(sizes) == P.max_batch
    assert sizes == sorted(sizes), "additive increase only goes up"
    assert s.rate == pytest.approx(min(P.max_rate, 40 / 0.1))
    for _ in range(100):
        s = adjust_processing_rate(s, load(open_breakers=("payment",), in_flight=40, latency_p95_s=5.0), P)
        assert P.min_batch <= s.batch_size <= P.max_batch
    assert s.batch_size == P.min_batch
    assert s.kind == "hold", "already at the minimum: nothing left to shrink"


def test_rate_follows_the_batch_up_to_the_max_rate() -> None:
    assert P.rate_for(4) == pytest.approx(40.0)
    assert P.rate_for(40) == pytest.approx(150.0)


def test_adjust_reports_what_changed_and_why() -> None:
    grown = adjust_processing_rate(state(10), load(), P)
    assert (grown.batch_size, grown.kind) == (12, "grow")
    shrunk = adjust_processing_rate(state(10), load(in_flight=20), P)
    assert (shrunk.batch_size, shrunk.kind) == (7, "shrink")
    assert "utilization" in shrunk.reason


# ---------------------------------------------------------------------------------------------- pins
def test_a_pinned_batch_overrides_the_law() -> None:
    s = adjust_processing_rate(state(10), load(open_breakers=("payment",)), P, Pins(batch=25))
    assert (s.batch_size, s.kind) == (25, "pinned")
    assert s.rate == pytest.approx(150.0)


def test_a_pinned_rate_sets_the_rate_and_a_matching_batch() -> None:
    s = adjust_processing_rate(state(10), load(), P, Pins(rate=12.0))
    assert (s.rate, s.batch_size, s.kind) == (12.0, 2, "pinned")


def test_pins_are_validated_against_the_bounds() -> None:
    with pytest.raises(ValueError, match="within"):
        Pins(batch=41).validate(P)
    with pytest.raises(ValueError, match="within"):
        Pins(batch=0).validate(P)
    with pytest.raises(ValueError, match="within"):
        Pins(rate=151.0).validate(P)
    with pytest.raises(ValueError, match="not both"):
        Pins(batch=2, rate=3.0).validate(P)
    assert Pins(batch=40).validate(P).active


def test_unpinned_releases_respect_headroom_pinned_ones_do_not() -> None:
    busy = load(in_flight=16)
    assert release_quota(state(10), busy, P, tokens=10) == (1, "headroom")
    assert release_quota(state(10), busy, P, tokens=10, pins=Pins(batch=10)) == (10, "batch")
    assert release_quota(state(10), load(in_flight=0), P, tokens=3.5) == (3, "rate")


# ---------------------------------------------------------------------------------------------- token bucket
def test_token_bucket_admits_the_rate_with_bursts_up_to_the_batch() -> None:
    bucket = TokenBucket(rate=10.0, burst=5, now=100.0)
    assert bucket.available(100.0) == 5
    bucket.take(5, 100.0)
    assert bucket.available(100.0) == 0
    assert bucket.wait_for(1, 100.0) == pytest.approx(0.1)
    assert bucket.available(100.25) == pytest.approx(2.5)
    assert bucket.available(200.0) == 5, "never more than the burst"


# ---------------------------------------------------------------------------------------------- fixed waves
def test_fixed_waves_release_once_per_interval_and_never_double_a_missed_wave() -> None:
    anchor, interval = 1000.0, 5.0
    assert wave_due(anchor, interval, 1004.9, last_wave_at=0.0) is None, "no wave before the first interval"
    first = wave_due(anchor, interval, 1005.0, last_wave_at=0.0)
    assert first == 1005.0
    assert wave_due(anchor, interval, 1007.0, last_wave_at=first) is None, "the same wave is not released twice"
    assert wave_due(anchor, interval, 1010.2, last_wave_at=first) == 1010.0
    # The leader was away for three waves: only the latest is released.
    assert wave_due(anchor, interval, 1026.0, last_wave_at=1010.0) == 1025.0
    assert next_wave_at(anchor, interval, 1026.0) == 1030.0
    assert next_wave_at(anchor, interval, 1001.0) == 1005.0


def test_a_new_anchor_restarts_the_schedule_after_an_older_wave() -> None:
    # Switched to fixed at 2000.0 after the last wave of an earlier fixed period at 1990.0.
    assert wave_due(2000.0, 5.0, 2004.0, last_wave_at=1990.0) is None
    assert wave_due(2000.0, 5.0, 2005.0, last_wave_at=1990.0) == 2005.0


def test_strategies_parse_and_validate() -> None:
    assert ProcessingStrategy.parse("WAVELESS").mode is Mode.WAVELESS
    fixed = ProcessingStrategy.parse("fixed", 50, 2.5)
    assert (fixed.mode, fixed.wave_size, fixed.wave_interval_s) == (Mode.FIXED, 50, 2.5)
    with pytest.raises(ValueError, match="mode must be"):
        ProcessingStrategy.parse("waves")
    with pytest.raises(ValueError, match="wave size"):
        ProcessingStrategy.parse("fixed", 0, 1.0)
    with pytest.raises(ValueError, match="interval"):
        ProcessingStrategy.parse("fixed", 10, 0.0)


def test_params_are_validated() -> None:
    assert ControlParams().validate().target_utilization == 0.85
    with pytest.raises(ValueError, match="max_batch"):
        ControlParams(min_batch=5, max_batch=4).validate()
    with pytest.raises(ValueError, match="decrease"):
        ControlParams(decrease=1.0).validate()


# ---------------------------------------------------------------------------------------------- patterns
def test_steady_pattern_arrives_at_the_rate() -> None:
    arrivals = OrderPattern(Pattern.STEADY, 10.0, 3.0).arrivals()
    assert len(arrivals) == 30
    assert arrivals[:3] == pytest.approx([0.1, 0.2, 0.3])
    assert arrivals == sorted(arrivals)


def test_bursty_pattern_has_a_lunch_peak_between_a_steady_base() -> None:
    p = OrderPattern(Pattern.BURSTY, 10.0, 100.0, peak_rate=40.0)
    assert p.rate_at(10.0) == 10.0 and p.rate_at(90.0) == 10.0
    assert p.rate_at(50.0) == 40.0
    assert p.rate_at(35.0) == pytest.approx(25.0), "ramps up into the peak"
    arrivals = p.arrivals()
    in_peak = sum(1 for t in arrivals if 40 <= t < 60)
    in_base = sum(1 for t in arrivals if 0 <= t < 20)
    assert in_peak == pytest.approx(800, abs=1)
    assert in_base == pytest.approx(200, abs=1)
    # base 10/s for 60 s, peak 40/s for 20 s, two 10 s ramps averaging 25/s
    assert len(arrivals) == pytest.approx(600 + 800 + 500, abs=2)


def test_ramp_pattern_goes_from_the_rate_to_the_peak_and_defaults_to_four_times_the_rate() -> None:
    p = OrderPattern(Pattern.RAMP, 5.0, 10.0)
    assert p.peak == 20.0
    assert p.rate_at(0.0) == 5.0 and p.rate_at(10.0) == 20.0 and p.rate_at(5.0) == 12.5
    assert len(p.arrivals()) == pytest.approx(125, abs=1)


def test_patterns_refuse_bad_values() -> None:
    with pytest.raises(ValueError, match="rate"):
        OrderPattern(Pattern.STEADY, 0.0, 10.0)
    with pytest.raises(ValueError, match="duration"):
        OrderPattern(Pattern.STEADY, 1.0, 0.0)


# ---------------------------------------------------------------------------------------------- the generator
class Intake:
    """Takes orders the way the waveless intake does: an order without ``order_id`` gets one."""

    def __init__(self) -> None:
        self.calls: list[list[dict]] = []

    def submit(self, orders):
        batch = [{**o, "order_id": o.get("order_id") or f"o-{len(self.calls)}-{i}"} for i, o in enumerate(orders)]
        self.calls.append(batch)
        return [{"order_id": o["order_id"], "entry_id": f"{len(self.calls)}-{i}"} for i, o in enumerate(batch)]


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_the_generator_submits_the_pattern_s_orders_with_fresh_ids() -> None:
    intake, t = Intake(), FakeTime()
    seen: list[str] = []
    out = generate_orders(intake, OrderPattern(Pattern.STEADY, 10.0, 2.0), template={"sku": "A", "order_id": "x"},
                          clock=t.clock, sleep=t.sleep, on_submit=lambda acc: seen.extend(a["order_id"] for a in acc))  # fmt: skip
    orders = [o for call in intake.calls for o in call]
    assert out["submitted"] == len(orders) == len(seen) == 20
    assert all(o["sku"] == "A" for o in orders)
    assert "x" not in seen and len(set(seen)) == 20, "the template's order id is never reused"
    assert out["elapsed_s"] == pytest.approx(2.0, abs=0.01) and out["peak_rate"] is None


def test_the_generator_submits_orders_due_together_in_one_call_and_repeats_until_stopped() -> None:
    intake, t = Intake(), FakeTime()

    def late_sleep(seconds: float) -> None:
        t.now += 1.0  # the generator falls a second behind at every wait

    out = generate_orders(intake, OrderPattern(Pattern.STEADY, 10.0, 1.0), repeat=True, clock=t.clock,
                          sleep=late_sleep, stop=lambda: t.now >= 3.5)  # fmt: skip
    assert [len(c) for c in intake.calls][:2] == [10, 10], "a second's orders at once"
    assert out["submitted"] == sum(len(c) for c in intake.calls) >= 30, "the pattern again after it ended"


# ---------------------------------------------------------------------------------------------- plumbing
def test_the_services_a_saga_calls_include_its_compensations_once_each() -> None:
    definition = parse_definition({"name": "s", "steps": [
        {"id": "a", "action": {"service": "inventory", "operation": "reserve"},
         "compensation": {"type": "UNDO", "action": {"service": "inventory", "operation": "release"}}},
        {"id": "b", "action": {"service": "payment", "operation": "charge"},
         "compensation": {"type": "UNDO", "action": {"service": "refunds", "operation": "refund"}}},
        {"id": "c", "action": "tests.handlers:step", "compensation": {"type": "UNDO", "action": "tests.handlers:undo"}},
    ]})  # fmt: skip
    assert services_called(definition) == ("inventory", "payment", "refunds")


def test_state_fields_decode_to_what_was_written() -> None:
    assert [decode(v) for v in ("", None, "7", "0.25", "inf", "fixed")] == [None, None, 7, 0.25, "inf", "fixed"]
    assert (decode_int("2.0"), decode_int("x"), decode_float("3"), decode_float("")) == (2, None, 3.0, None)


# ============================================================================ the benchmark's verdict
def _mode(p95: float, tput: float, best: float, lost: int = 0, duplicated: int = 0) -> dict:
    return {"cycle_p95_ms": p95, "orders_per_s": tput, "peak_completions_per_s": best, "lost": lost,
            "duplicated": duplicated, "load_1m": [1.0, 2.0]}  # fmt: skip


def test_the_bench_bar_needs_half_the_p95_at_equal_or_better_throughput_and_nothing_lost() -> None:
    from wes_cli.bench.waveless import bar_verdict

    ok = bar_verdict(_mode(5000, 17.0, 36), _mode(100, 19.0, 36), 36)
    assert ok["met"] and ok["waveless_p95_over_fixed_p95"] == 0.02 and not ok["saturated"] and "note" not in ok
    assert not bar_verdict(_mode(5000, 17.0, 36), _mode(2600, 19.0, 36), 36)["met"]  # p95 over half
    assert not bar_verdict(_mode(5000, 17.0, 36), _mode(100, 16.9, 36), 36)["met"]  # less throughput
    assert not bar_verdict(_mode(5000, 17.0, 36), _mode(100, 19.0, 36, lost=1), 36)["met"]
    assert not bar_verdict(_mode(5000, 17.0, 36, duplicated=1), _mode(100, 19.0, 36), 36)["met"]


def test_the_bench_says_when_the_engine_could_not_serve_the_peak() -> None:
    from wes_cli.bench.waveless import bar_verdict

    out = bar_verdict(_mode(20000, 13.0, 14), _mode(12000, 15.0, 16), 36)
    assert out["saturated"] and not out["met"]
    assert "16 orders/s against 36/s" in out["note"]


def test_peak_rate_is_the_busiest_window() -> None:
    from wes_cli.bench.waveless import _peak_rate

    assert _peak_rate([], 5.0) is None
    times = [0.1 * i for i in range(50)] + [20.0 + i for i in range(5)]  # 50 in 4.9 s, then 5 in 4 s
    assert _peak_rate(times, 5.0) == 10.0
