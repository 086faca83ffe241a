"""Waveless order release: flow rate, batch size and queue depth over time, the controller's
decisions with their reasons, and (operators) the mode switch and the pins."""

from __future__ import annotations

import time
from typing import Any

import streamlit as st

from dashboard import ui
from dashboard.charts import formats, release, samples, service_state, sla

state = st.session_state
PLOT_CONFIG = {"displayModeBar": False}
DECISIONS = 100

ui.header("Waveless release", "Orders flow from the intake into sagas in batches sized from the measured load "
          "(AIMD: grow by 2 with spare capacity, shrink past 85 % utilization, a slow step or an open breaker).")  # fmt: skip
state.setdefault("wl_mode", "waveless")
state.setdefault("wl_wave_size", 100)
state.setdefault("wl_wave_interval", 5.0)
state.setdefault("wl_pin_kind", "batch size")
state.setdefault("wl_pin_value", 10.0)


def switch_mode() -> None:
    mode = state["wl_mode"]
    client = ui.client()
    if mode == "fixed":
        ui.act(f"Mode: fixed waves of {state['wl_wave_size']} every {state['wl_wave_interval']:g} s", client.set_mode,
               "fixed", int(state["wl_wave_size"]), float(state["wl_wave_interval"]))  # fmt: skip
    else:
        ui.act("Mode: waveless", client.set_mode, "waveless")


def pin() -> None:
    value = float(state["wl_pin_value"])
    if state["wl_pin_kind"] == "batch size":
        ui.act(f"Pinned the batch size at {int(value)}", ui.client().pin, batch_size=int(value))
    else:
        ui.act(f"Pinned the rate at {value:g} orders/s", ui.client().pin, rate=value)


def unpin() -> None:
    ui.act("Unpinned: adaptive again", ui.client().unpin)


def controls(status: dict[str, Any]) -> None:
    if not ui.can_control():
        return
    left, right = st.columns(2)
    with left.container(border=True):
        st.markdown("**Mode**")
        st.radio("Release mode", ("waveless", "fixed"), key="wl_mode", horizontal=True)
        if state["wl_mode"] == "fixed":
            a, b = st.columns(2)
            a.number_input("Wave size (orders)", min_value=1, max_value=100_000, step=10, key="wl_wave_size")
            b.number_input("Wave interval (s)", min_value=0.5, max_value=3600.0, step=1.0, key="wl_wave_interval")
        st.button(f"Switch to {state['wl_mode']}", key="ctl_waveless_mode", on_click=switch_mode, type="primary",
                  disabled=state["wl_mode"] == status.get("mode") and state["wl_mode"] == "waveless")  # fmt: skip
    with right.container(border=True):
        st.markdown("**Pin** (replaces the control law until unpinned)")
        a, b = st.columns(2)
        a.radio("Pin", ("batch size", "rate"), key="wl_pin_kind", horizontal=True)
        b.number_input("Value (orders, or orders/s)", min_value=0.1, max_value=100_000.0, step=1.0, key="wl_pin_value")
        p, u = st.columns(2)
        p.button("Pin", key="ctl_waveless_pin", on_click=pin)
        u.button("Unpin", key="ctl_waveless_unpin", on_click=unpin,
                 disabled=status.get("pinned_batch") is None and status.get("pinned_rate") is None)  # fmt: skip


@st.fragment(run_every=ui.refresh_every())
def waveless() -> None:
    ui.live_caption()
    ui.show_flash()
    now = time.time()
    with ui.shown_errors():
        status = ui.read("waveless", DECISIONS)
        if not status["available"]:
            st.info("No release controller has reported yet: it runs in the workers (`wes up` starts them).")
        m = st.columns(6)
        mode = status.get("mode") or "—"
        if mode == "fixed":
            wave = status["state"]
            mode = f"fixed ({_num(wave.get('wave_size'))} every {_num(wave.get('wave_interval_s'))} s)"
        m[0].metric("Mode", mode)
        pinned = status.get("pinned_batch") is not None or status.get("pinned_rate") is not None
        m[1].metric("Batch size", _num(status.get("batch_size")), help="pinned" if pinned else None)
        m[2].metric("Rate limit", f"{_num(status.get('rate'))} /s")
        m[3].metric("Queue depth", _num(status.get("queue_depth")))
        m[4].metric("In flight", _num(status.get("in_flight")))
        util, target = status.get("utilization"), status.get("target_utilization") or service_state.TARGET_UTILIZATION
        m[5].metric("Utilization", formats.percent_text(util, 0), help=f"target {target:.0%}")
        held = status.get("limit") or "—"
        st.caption(f"Leader `{status.get('leader') or '—'}` · held back by **{held}** · last change "
                   f"**{status.get('last_kind') or '—'}**: {status.get('last_reason') or '—'}"
                   + (f" · pinned batch {_num(status['pinned_batch'])}" if status.get("pinned_batch") else "")
                   + (f" · pinned rate {_num(status['pinned_rate'])}/s" if status.get("pinned_rate") else ""))  # fmt: skip
        if status.get("last_error"):
            st.error(f"Last release error: {status['last_error']}")
        controls(status)

        sample = {"t": float(status.get("updated_at") or now),
                  **{f: status.get(f) for f in release.WAVELESS_FIELDS}}  # fmt: skip
        state["wl_samples"] = samples.append_sample(state.get("wl_samples", []), sample)
        left, right = st.columns([3, 2])
        with left:
            points = release.waveless_points(status["decisions"], state["wl_samples"])
            st.plotly_chart(release.waveless_figure(points), key="wl_chart", config=PLOT_CONFIG)
        with right:
            definition = status.get("definition")
            since = (now - 3600) // 60 * 60
            frame = sla.series_frame(ui.read("series", since=since, step=60, definition=definition))
            st.plotly_chart(sla.rate_figure(frame, "started_per_s", f"Flow: sagas started per second ({definition})"),
                            key="wl_flow", config=PLOT_CONFIG)  # fmt: skip
            st.plotly_chart(sla.rate_figure(frame, "completion_per_min", "Completed per minute"),
                            key="wl_done", config=PLOT_CONFIG)  # fmt: skip
        st.markdown("**Decisions** (newest first)")
        st.dataframe(release.decisions_frame(status["decisions"]), hide_index=True, key="wl_decisions")


def _num(value: Any) -> str:
    if value is None:
        return "—"
    return f"{value:g}" if isinstance(value, int | float) else str(value)


waveless()
