"""The pure figure builders and numbers of ``dashboard.charts`` (no API, no Streamlit)."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from dashboard.charts import formats, release, samples, service_calls, service_state, sla, style, workflows

pytestmark = pytest.mark.unit
T0 = 1_767_225_600.0  # 2026-01-01 00:00:00 UTC


def target(**fields):
    row = {"name": "workflow_start", "description": "workflow start", "count": 10, "compliance": 1.0,
           "objective": 0.999, "met": True, "target_s": 1.0, "p90_s": 0.002, "p95_s": 0.003, "p99_s": 0.004, "bar_s": 0.01,
           "bar_p99_s": 0.004, "bar_met": True, "bar_metric": "workflow_start"}  # fmt: skip
    row.update(fields)
    return row


def test_sla_lights():
    assert sla.sla_light(target()) == "green"
    assert sla.sla_light(target(bar_met=False)) == "amber"
    assert sla.sla_light(target(met=False, bar_met=False)) == "red"
    assert sla.sla_light(target(count=0, met=None, compliance=None)) == "grey"
    assert sla.sla_light(target(bar_met=None)) == "green"  # no overhead samples yet


def test_sla_tiles_texts():
    (tile,) = sla.sla_tiles({"targets": [target(compliance=0.99876, p99_s=0.0042, bar_p99_s=0.00042)]})
    assert tile["title"] == "Workflow start" and tile["light"] == "green" and tile["color"] == style.LIGHTS["green"]
    assert tile["compliance"] == "99.88 %" and tile["objective"] == "99.9 %"
    assert (tile["target"], tile["p99"], tile["bar"], tile["bar_p99"]) == ("1 s", "4.2 ms", "10 ms", "420 µs")
    assert tile["p95"] == "3 ms"
    empty = sla.sla_tiles({"targets": [target(count=0, p90_s=None, p95_s=None, p99_s=None)]})[0]
    assert empty["p95"] == empty["p99"] == empty["p90"] == "—"
    assert sla.sla_tiles({"targets": [{k: v for k, v in target().items() if k != "p95_s"}]})[0]["p95"] == "—"


def series(*counters, step=60):
    return {"step_s": step, "points": [{"start": T0 + n * step, "counters": c} for n, c in enumerate(counters)]}


def test_series_frame_derives_the_rates():
    frame = sla.series_frame(series(
        {"workflows_started": 6, "workflows_finished.completed": 3, "workflows_finished.compensated": 1,
         "compensations_started": 1, "steps.completed": 9, "steps.retried": 1, "breaker_trips": 2},
        {},
    ))  # fmt: skip
    first, empty = frame.iloc[0], frame.iloc[1]
    assert first["time"] == pd.Timestamp("2026-01-01T00:00:00Z")
    assert first["completion_per_min"] == 3 and first["compensation_per_min"] == 1
    assert first["success_rate"] == 0.75 and first["retry_rate"] == 0.1 and first["breaker_trips"] == 2
    assert first["started_per_s"] == pytest.approx(0.1)
    assert math.isnan(empty["success_rate"]) and math.isnan(empty["retry_rate"]) and empty["finished"] == 0

    now = sla.window_summary(frame, seconds=120, step_s=60)
    assert now["completion_per_min"] == 1.5 and now["success_rate"] == 0.75 and now["breaker_trips"] == 2
    assert sla.window_summary(frame.iloc[1:], seconds=60, step_s=60)["success_rate"] is None
    assert sla.window_summary(sla.series_frame({"points": []}), 300, 60)["completion_per_min"] == 0.0


def test_rate_figures():
    frame = sla.series_frame(series({"workflows_finished.completed": 2}, {"workflows_finished.compensated": 2}))
    line = sla.rate_figure(frame, "success_rate", "Completed / ended", percent=True, target=0.99)
    assert line.data[0].type == "scatter" and list(line.data[0].y[:1]) == [1.0]
    assert line.layout.yaxis.tickformat == ".0%" and line.layout.shapes[0].y0 == 0.99
    assert line.layout.title.text == "Completed / ended"
    bars = sla.rate_figure(frame, "breaker_trips", "Trips", bars=True)
    assert bars.data[0].type == "bar"
    empty = sla.rate_figure(sla.series_frame({}), "completion_per_min", "x")
    assert len(empty.data) == 1 and len(empty.data[0].x) == 0


def test_dispatch_lag_tile_and_series():
    row = {"name": "dispatch_lag", "quantile": 0.95, "bar_s": 0.1, "count": 40, "p95_s": 0.0123, "bar_met": True}
    tile = sla.indicator_tile({"indicators": [row]})
    assert (tile["label"], tile["value"], tile["bar"], tile["light"], tile["count"]) == ("p95", "12.3 ms", "100 ms",
                                                                                         "green", 40)  # fmt: skip
    assert sla.indicator_tile({"indicators": [{**row, "bar_met": False, "p95_s": 2.5}]})["light"] == "amber"
    none = sla.indicator_tile({"targets": []})
    assert none["value"] == "no data" and none["light"] == "grey"

    points = series({}, {})
    points["points"][0]["latency"] = {"dispatch_lag": {"count": 3, "p95_s": 0.02}}
    frame = sla.series_frame(points)
    assert frame["dispatch_lag_p95_s"].iloc[0] == 0.02 and math.isnan(frame["dispatch_lag_p95_s"].iloc[1])
    fig = sla.latency_figure(frame, "dispatch_lag_p95_s", "Lag", bar=0.1)
    assert list(fig.data[0].y[:1]) == [0.02] and fig.layout.shapes[0].y0 == 0.1 and fig.layout.title.text == "Lag"
    assert len(sla.latency_figure(sla.series_frame({}), "dispatch_lag_p95_s", "Lag").data[0].x) == 0


def calls_series(*points, step=60):
    """``points``: per point, ``{service: (ok, failed, refused)}``."""
    return {
        "step_s": step,
        "points": [
            {"start": T0 + n * step,
             "by_service": {name: {f"service_calls.{o}": v for o, v in zip(service_calls.CALL_OUTCOMES, counts, strict=True)
                                   if v} for name, counts in p.items()}}
            for n, p in enumerate(points)
        ],
    }  # fmt: skip


def test_service_calls_from_the_rollups():
    frame = service_calls.service_calls_frame(calls_series(
        {"payment": (3, 1, 0), "inventory": (4, 0, 0)},
        {"payment": (0, 0, 2)},
        {},
    ))  # fmt: skip
    assert service_calls.service_names(frame) == ["inventory", "payment"]
    pay = frame[frame["service"] == "payment"].reset_index(drop=True)
    assert list(pay["calls"]) == [4, 2, 0]
    assert pay.loc[0, "availability"] == 0.75 and pay.loc[0, "error_rate"] == 0.25
    assert pay.loc[1, "availability"] == 0.0 and math.isnan(pay.loc[1, "error_rate"])  # refused: nothing answered
    assert math.isnan(pay.loc[2, "availability"]) and math.isnan(pay.loc[2, "error_rate"])  # no call: a gap
    total = frame[frame["service"] == service_calls.ALL_SERVICES].reset_index(drop=True)
    assert list(total["ok"]) == [7, 0, 0] and total.loc[0, "availability"] == 7 / 8
    assert total.loc[0, "error_rate"] == 1 / 8 and total.loc[1, "availability"] == 0.0

    now = service_calls.calls_summary(frame, seconds=120, step_s=60, service="payment")
    assert now == {"calls": 2, "availability": 0.0, "error_rate": None}
    assert service_calls.calls_summary(frame, 180, 60) == {"calls": 10, "availability": 0.7, "error_rate": 1 / 8}
    empty = service_calls.service_calls_frame({"points": [{"start": T0, "by_service": {"x": {"breaker_trips": 1}}}]})
    assert empty.empty and service_calls.service_names(empty) == []
    assert service_calls.calls_summary(empty, 300, 60) == {"calls": 0, "availability": None, "error_rate": None}


def test_service_lines_and_history_figures():
    frame = service_calls.service_calls_frame(calls_series({"payment": (3, 1, 0), "inventory": (4, 0, 0)}, {}))
    fig = service_calls.service_lines_figure(frame, "availability", "Service calls answered OK")
    assert [t.name for t in fig.data] == ["inventory", "payment", service_calls.ALL_SERVICES]
    assert fig.data[1].y[0] == 0.75 and fig.data[2].line.width == 3
    assert fig.layout.yaxis.tickformat == ".0%" and fig.layout.showlegend is True
    only = service_calls.service_lines_figure(frame, "error_rate", "x", services=["payment"], overall=False)
    assert [t.name for t in only.data] == ["payment"] and only.data[0].y[0] == 0.25
    blank = service_calls.service_lines_figure(service_calls.service_calls_frame({}), "availability", "x")
    assert [len(t.x) for t in blank.data] == [0]

    sampled = [{"t": T0 + 5, "utilization": 0.5}]
    one = service_calls.service_history_figure(frame, "payment", sampled)
    assert [t.name for t in one.data] == ["error rate", "availability", "utilization (sampled)"]
    assert one.data[0].y[0] == 0.25 and one.data[1].y[0] == 0.75 and list(one.data[2].y) == [0.5]
    assert one.layout.title.text == "Error rate and availability, last hour"
    none = service_calls.service_history_figure(frame, "unknown")
    assert [len(t.x) for t in none.data] == [0, 0, 0]


def service(name, healthy=1, state="CLOSED", forced=None, **b):
    breaker = {"state": state, "forced": forced, "trips": 0, "window_failure_rate": 0.0, **b}
    return {"name": name, "healthy_instances": healthy, "breaker": breaker}


def test_availability_and_breaker_problems():
    listed = [service("a"), service("b", healthy=0), service("c", state="OPEN", trips=3, window_failure_rate=0.6),
              service("d", forced="OPEN"), service("e", state="HALF_OPEN")]  # fmt: skip
    assert service_state.availability(listed) == pytest.approx(2 / 5)
    assert service_state.availability([]) is None
    problems = {p["service"]: p for p in service_state.breaker_problems(listed)}
    assert set(problems) == {"c", "d", "e"}
    assert problems["c"] == {"service": "c", "state": "OPEN", "trips": 3, "failure_rate": 0.6}
    assert problems["d"]["state"] == "forced OPEN"
    assert service_state.breaker_label({"state": "CLOSED", "forced": "OPEN"}) == ("forced OPEN", "red")
    assert service_state.breaker_label({"state": "HALF_OPEN"}) == ("HALF-OPEN", "orange")
    assert service_state.breaker_label({"state": "CLOSED", "forced": "CLOSED"}) == ("forced CLOSED", "green")


def test_utilization_against_the_target():
    fig = service_state.utilization_figure([
        {"id": "p-1", "utilization": 0.5, "healthy": True},
        {"id": "p-2", "utilization": 0.9, "healthy": True},
        {"id": "p-3", "utilization": 0.0, "healthy": False},
    ])  # fmt: skip
    bar = fig.data[0]
    assert list(bar.x) == ["p-1", "p-2", "p-3"] and list(bar.text) == ["50%", "90%", "0%"]
    assert list(bar.marker.color) == [style.LIGHTS["green"], style.LIGHTS["red"], style.LIGHTS["grey"]]
    assert fig.layout.shapes[0].y0 == 0.85 and fig.layout.yaxis.range[1] >= 1.0


def test_samples_keep_an_hour_without_repeats():
    history: list = []
    for t in (T0, T0 + 5, T0 + 5, T0 + 3000, T0 + 4000):
        history = samples.append_sample(history, {"t": t, "value": t - T0})
    assert [h["t"] for h in history] == [T0 + 3000, T0 + 4000]  # older than an hour dropped
    assert samples.append_sample([{"t": T0, "v": 1}], {"t": T0, "v": 2}) == [{"t": T0, "v": 2}]  # a repeat replaces
    short = samples.append_sample([{"t": T0}], {"t": T0 + 1}, max_len=1)
    assert short == [{"t": T0 + 1}]
    fig = samples.history_figure(history, {"value": "available"}, "Sampled", percent=True)
    assert list(fig.data[0].y) == [h["value"] for h in history] and fig.layout.showlegend is False


def detail(**over):
    steps = [
        {"step_id": "reserve", "status": "COMPLETED", "attempt": 1, "started_at": T0, "ended_at": T0 + 1,
         "execution_time": 1.0, "error": None,
         "compensation": {"type": "UNDO", "attempt": 1, "started_at": T0 + 5, "ended_at": T0 + 6, "error": None,
                          "running": False}},
        {"step_id": "charge", "status": "RUNNING", "attempt": 2, "started_at": T0 + 1, "ended_at": None,
         "execution_time": None, "error": {"message": "card declined"},
         "compensation": {"type": "RETRY", "attempt": 0, "started_at": None, "ended_at": None, "error": None,
                          "running": False}},
        {"step_id": "ship", "status": "PENDING", "attempt": 0, "started_at": None, "ended_at": None,
         "execution_time": None, "error": None, "compensation": {"type": "UNDO"}},
    ]  # fmt: skip
    return {"steps": steps, **over}


def test_step_timeline():
    frame = workflows.timeline_frame(detail(), now=T0 + 10)
    assert list(zip(frame["step"], frame["phase"], strict=True)) == [
        ("reserve", "forward"), ("reserve", "compensation"), ("charge", "forward")]  # fmt: skip
    running = frame.iloc[2]
    assert running["end"] == pd.Timestamp(T0 + 10, unit="s", tz="UTC"), "a running step reaches now"
    fig = workflows.step_timeline(detail(), now=T0 + 10)
    assert {t.name for t in fig.data} == {"COMPLETED", "compensation", "RUNNING"}
    assert list(fig.layout.yaxis.categoryarray)[::-1] == ["reserve", "charge", "ship"]  # declared order, top down
    assert fig.layout.title.text == "Step timeline"
    empty = workflows.step_timeline({"steps": [detail()["steps"][2]]}, now=T0)
    assert not empty.data and empty.layout.annotations[0].text == "no step has started yet"


def test_tables():
    steps = workflows.steps_frame(detail())
    assert list(steps["status"]) == ["COMPLETED", "RUNNING", "PENDING"] and steps["error"][1] == "card declined"
    events = workflows.events_frame([
        {"version": 1, "at": T0, "type": "WorkflowCreated", "data": {"input": {"a": 1}}},
        {"version": 2, "at": T0 + 1, "type": "StepStarted", "data": {"step_id": "reserve", "attempt": 1}},
    ])  # fmt: skip
    assert list(events["type"]) == ["WorkflowCreated", "StepStarted"] and events["step"][1] == "reserve"
    assert events["at"][0] == "2026-01-01 00:00:00" and events["data"][1] == "attempt=1"
    items = [{"workflow_id": "w1", "workflow_type": "f", "status": "RUNNING", "requires_attention": True,
              "correlation_id": "c", "created_at": T0, "updated_at": T0 + 50}]  # fmt: skip
    table = workflows.workflows_frame(items, now=T0 + 60)
    assert table.iloc[0].to_dict() == {"workflow_id": "w1", "definition": "f", "status": "RUNNING", "attention": "⚠",
                                       "correlation_id": "c", "created": "2026-01-01 00:00:00", "updated": "10 s ago"}  # fmt: skip
    assert workflows.workflows_frame([], now=T0).empty


def test_stuck_means_no_change_in_a_moving_state():
    items = [
        {"workflow_id": "old", "status": "RUNNING", "updated_at": T0},
        {"workflow_id": "fresh", "status": "RUNNING", "updated_at": T0 + 290},
        {"workflow_id": "paused", "status": "PAUSED", "updated_at": T0},
        {"workflow_id": "undoing", "status": "COMPENSATING", "updated_at": T0 + 10},
    ]
    assert [i["workflow_id"] for i in workflows.stuck(items, now=T0 + 300, after_s=120)] == ["old", "undoing"]


def test_waveless_points_and_figure():
    decisions = [
        {"at": T0 + 2, "kind": "grow", "batch_size": 6, "rate": 60, "queue_depth": 12, "utilization": 0.3,
         "reason": "spare capacity"},
        {"at": T0, "kind": "mode", "batch_size": 4, "rate": 40, "queue_depth": "", "reason": "switched", "by": "env-2"},
        {"kind": "broken"},
    ]  # fmt: skip
    sampled = [{"t": T0 + 2, "batch_size": 6, "rate": 60, "queue_depth": 10}, {"t": T0 + 5, "batch_size": 6,
               "rate": 60, "queue_depth": 0}]  # fmt: skip
    points = release.waveless_points(decisions, sampled)
    assert list(points["t"]) == [T0, T0 + 2, T0 + 5]
    assert list(points["queue_depth"].fillna(-1)) == [-1, 10, 0]  # the later sample wins a tie
    fig = release.waveless_figure(points)
    assert [t.name for t in fig.data] == ["batch_size", "rate", "queue_depth"] and list(fig.data[0].y) == [4, 6, 6]
    assert [a.text for a in fig.layout.annotations] == ["Batch size", "Rate limit (orders/s)", "Queue depth"]
    assert release.waveless_points([], []).empty and len(release.waveless_figure(release.waveless_points([])).data) == 3
    table = release.decisions_frame(decisions[:2])
    assert list(table["kind"]) == ["grow", "mode"] and table["reason"][0] == "spare capacity"


def test_texts():
    assert formats.seconds_text(None) == "—" and formats.seconds_text(0.00025) == "250 µs"
    assert formats.seconds_text(0.0123) == "12.3 ms" and formats.seconds_text(42.0) == "42 s"
    assert formats.percent_text(0.5) == "50.0 %" and formats.percent_text(float("nan")) == "—"
    assert formats.ago(T0, T0 + 30) == "30 s ago" and formats.ago(T0, T0 + 600) == "10 min ago"
    assert formats.ago(T0, T0 + 7200) == "2.0 h ago" and formats.ago(None, T0) == "never"
    assert formats.clock(T0) == "2026-01-01 00:00:00" and formats.clock(None) == ""
