"""Overview: the five SLA targets, the saga rates and the dispatch lag of the last hour, and what needs
an operator now."""

from __future__ import annotations

import os
import time

import streamlit as st

from dashboard import ui
from dashboard.charts import formats, service_calls, service_state, sla, workflows

SLA_WINDOW_S = 300
SERIES_STEP_S = 60
RATE_WINDOW_S = 300
STUCK_ENV = "WES_DASHBOARD_STUCK_SECONDS"
# Oldest workflows per moving status looked at for stuck ones (order=oldest: the longest-running come
# first, however many newer ones there are). A comment, not a docstring: Streamlit's magic would draw it.
STUCK_SCAN = 100
MAX_LISTED = 5
PLOT_CONFIG = {"displayModeBar": False}
LIGHT_TEXT = {"green": "met", "amber": "our bar missed", "red": "SLA missed", "grey": "no data"}
BADGE = {"green": "green", "amber": "orange", "red": "red", "grey": "gray"}


def stuck_after() -> float:
    try:
        return float(os.environ.get(STUCK_ENV, "300"))
    except ValueError:
        return 300.0


ui.header("Overview", f"SLA compliance over the last {SLA_WINDOW_S // 60} minutes; rates over the last hour "
          "(the engine's 10-second rollups, served by the API).")  # fmt: skip


def sla_tiles() -> dict:
    """Draws the SLA tiles; returns the report (its ``indicators`` feed the dispatch-lag tile)."""
    st.subheader("SLA targets")
    report: dict = {}
    with ui.shown_errors():
        report = ui.read("sla", SLA_WINDOW_S)
        tiles = sla.sla_tiles(report)
        for col, tile in zip(st.columns(len(tiles) or 1), tiles, strict=False):
            with col.container(border=True):
                st.markdown(f"**{tile['title']}**")
                st.badge(f"{tile['light'].upper()} · {LIGHT_TEXT[tile['light']]}", color=BADGE[tile["light"]])
                st.metric("Compliance", tile["compliance"],
                          help=f"Share at or under the seed's target {tile['target']} (objective "
                               f"{tile['objective']})")  # fmt: skip
                st.caption(f"p95 {tile['p95']} · p99 {tile['p99']} · target {tile['target']}")
                st.caption(f"our bar: p99 {tile['bar_p99']} ≤ {tile['bar']} · {tile['count']} samples")
    return report


def rates(now: float, report: dict) -> None:
    st.subheader("Sagas and services, last hour")
    since = (now - 3600) // SERIES_STEP_S * SERIES_STEP_S
    frame = calls = None
    with ui.shown_errors():
        series = ui.read("series", since=since, step=SERIES_STEP_S)
        frame = sla.series_frame(series)
        calls = service_calls.service_calls_frame(series)
    services: list = []
    with ui.shown_errors():
        services = ui.read("services")
    if frame is None or calls is None:
        return
    now_values = sla.window_summary(frame, RATE_WINDOW_S, SERIES_STEP_S)
    recent = service_calls.calls_summary(calls, RATE_WINDOW_S, SERIES_STEP_S)
    lag = sla.indicator_tile(report)
    up = sum(1 for svc in services if service_state.service_available(svc))
    no_calls = "no calls" if services else "no services"
    tiles = [
        ("Completion rate", f"{now_values['completion_per_min']:.1f} /min",
         sla.rate_figure(frame, "completion_per_min", "Sagas completed per minute"), "ov_completion"),
        ("Saga success rate", formats.percent_text(now_values["success_rate"]),
         sla.rate_figure(frame, "success_rate", "Completed / ended", percent=True, target=0.99), "ov_success"),
        ("Compensation rate", f"{now_values['compensation_per_min']:.1f} /min",
         sla.rate_figure(frame, "compensation_per_min", "Sagas compensating per minute"), "ov_compensation"),
        ("Retry rate", formats.percent_text(now_values["retry_rate"]),
         sla.rate_figure(frame, "retry_rate", "Step attempts retried", percent=True), "ov_retry"),
        ("Breaker trips", f"{now_values['breaker_trips']:.0f} in {RATE_WINDOW_S // 60} min",
         sla.rate_figure(frame, "breaker_trips", "Breaker trips per minute", bars=True), "ov_trips"),
        ("Service availability", formats.percent_text(recent["availability"]) if recent["calls"] else no_calls,
         service_calls.service_lines_figure(calls, "availability", "Service calls answered OK"), "ov_availability"),
        ("Service error rate", formats.percent_text(recent["error_rate"]) if recent["calls"] else no_calls,
         service_calls.service_lines_figure(calls, "error_rate", "Failed / answered calls, per service"), "ov_errors"),
        (f"Dispatch lag {lag['label']}", lag["value"],
         sla.latency_figure(frame, "dispatch_lag_p95_s", "Due → claimed by a worker, p95", lag["bar_s"]),
         "ov_dispatch_lag"),
    ]  # fmt: skip
    notes = {
        "ov_availability": f"{up} of {len(services)} services up now (a healthy instance, breaker not open)",
        "ov_errors": f"{recent['calls']} calls in the last {RATE_WINDOW_S // 60} min",
    } if services else {}  # fmt: skip
    notes["ov_dispatch_lag"] = (f"our bar: {lag['label']} ≤ {lag['bar']} · {LIGHT_TEXT[lag['light']]} · "
                                f"{lag['count']} claims in {SLA_WINDOW_S // 60} min")  # fmt: skip
    for row in (tiles[:4], tiles[4:]):
        for col, (label, value, fig, key) in zip(st.columns(len(row)), row, strict=True):
            with col.container(border=True):
                st.metric(label, value)
                if key in notes:
                    st.caption(notes[key])
                st.plotly_chart(fig, key=key, config=PLOT_CONFIG)


def problems(now: float) -> None:
    st.subheader("Needs attention now")
    found = 0
    counts: dict = {}
    with ui.shown_errors():
        counts = ui.read("counts")
        by_status = counts.get("by_status") or {}
        cols = st.columns(6)
        for col, name in zip(cols, ("RUNNING", "PAUSED", "COMPENSATING", "COMPLETED", "COMPENSATED", "CANCELLED"),
                             strict=True):  # fmt: skip
            col.metric(name.capitalize(), by_status.get(name, 0))
    left, middle, right = st.columns(3)
    with left, ui.shown_errors():
        st.markdown("**Open circuit breakers**")
        for b in service_state.breaker_problems(ui.read("services")):
            found += 1
            label = f"{b['service']} · {b['state']} · {b['failure_rate']:.0%} errors · {b['trips']} trips"
            if st.button(label, key=f"ov_brk_{b['service']}", icon=":material/electrical_services:"):
                ui.go("services", svc_focus=b["service"])
    with middle, ui.shown_errors():
        page = ui.read("workflows", requires_attention=True, limit=MAX_LISTED)
        total = int(counts.get("requires_attention", len(page["items"])))
        st.markdown(f"**Requires attention** ({total})")
        for item in page["items"]:
            found += 1
            label = f"{item['workflow_id']} · {item['workflow_type']} · {item['status']}"
            if st.button(label, key=f"ov_att_{item['workflow_id']}", icon=":material/warning:"):
                ui.go("workflow", workflow_id=item["workflow_id"])
        if total > len(page["items"]) and st.button("See all", key="ov_att_all"):
            ui.go("workflows", wf_attention=True, wf_status="(any)", wf_cursors=[None])
    with right, ui.shown_errors():
        after = stuck_after()
        before = round(now - after, 3)  # only those created before can be stuck: a bounded read
        items = []
        for status in ("RUNNING", "COMPENSATING", "CREATED"):
            items += ui.read("workflows", status=status, created_before=before, limit=STUCK_SCAN,
                             order="oldest")["items"]  # fmt: skip
        stuck = sorted(workflows.stuck(items, now, after), key=lambda i: i["updated_at"])
        more = f", the {MAX_LISTED} oldest shown" if len(stuck) > MAX_LISTED else ""
        st.markdown(f"**Stuck** ({len(stuck)}{more}; no change for {after:g} s)")
        for item in stuck[:MAX_LISTED]:
            found += 1
            label = f"{item['workflow_id']} · {item['status']} · {formats.ago(item['updated_at'], now)}"
            if st.button(label, key=f"ov_stuck_{item['workflow_id']}", icon=":material/hourglass_empty:"):
                ui.go("workflow", workflow_id=item["workflow_id"])
    if not found:
        st.success("No open breaker, no workflow needing attention, nothing stuck.")


@st.fragment(run_every=ui.refresh_every())
def overview() -> None:
    ui.live_caption()
    now = time.time()
    report = sla_tiles()
    problems(now)
    rates(now, report)


overview()
