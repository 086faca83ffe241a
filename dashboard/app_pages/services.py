"""Services: each endpoint's circuit breaker (state, error rate, trips; force open / closed, reset),
its instances' health and utilization against the 85 % target, and the demo's chaos knobs."""

from __future__ import annotations

import time
from typing import Any

import streamlit as st

from dashboard import ui
from dashboard.charts import formats, samples, service_calls, service_state, sla

state = st.session_state
PLOT_CONFIG = {"displayModeBar": False}
BREAKER_ACTIONS = {"force-open": "Force open", "force-closed": "Force closed", "reset": "Reset"}

ui.header("Services", "Circuit breakers are shared by every worker; utilization is calls in flight / capacity "
          f"(the load balancer aims at {service_state.TARGET_UTILIZATION:.0%}).")  # fmt: skip


def breaker_action(service: str, action: str) -> None:
    ui.act(f"Breaker of {service}: {BREAKER_ACTIONS[action].lower()}", ui.client().breaker, service, action)


def apply_chaos(service: str) -> None:
    knobs: dict[str, Any] = {
        "error_rate": float(state.get(f"svc_err_{service}", 0.0)),
        "down": bool(state.get(f"svc_down_{service}", False)),
    }
    mean = float(state.get(f"svc_lat_{service}", 0.0))
    if mean > 0:
        knobs["latency_ms"] = {"mean": mean, "p99": max(mean, mean * 4)}
    else:
        knobs["latency_ms"] = {"mean": 0.0, "p99": 0.0}
    ui.act(f"Chaos on {service}: {knobs}", ui.client().set_chaos, service, knobs)


def reset_chaos(service: str) -> None:
    for key in (f"svc_err_{service}", f"svc_down_{service}", f"svc_lat_{service}"):
        state.pop(key, None)
    ui.act(f"Chaos on {service}: reset", ui.client().reset_chaos, service)


def breaker_panel(svc: dict[str, Any], now: float, trips_last_hour: int) -> None:
    b = svc["breaker"]
    text, color = service_state.breaker_label(b)
    st.badge(f"breaker {text}", color=color)
    m = st.columns(4)
    m[0].metric(
        "Error rate (window)", f"{b['window_failure_rate']:.0%}", help=f"{b['window_calls']} calls in the window"
    )
    m[1].metric("Trips", b["trips"], help="Times the breaker opened since it was configured")
    m[2].metric("Calls / failures", f"{b['calls']} / {b['failures']}")
    m[3].metric("Open until", formats.clock(b["open_until"])[11:] if b.get("open_until") else "—")
    st.caption(f"{trips_last_hour} trip(s) in the last hour · policy: " + ", ".join(
        f"{k} {v}" for k, v in (b.get("policy") or {}).items()))  # fmt: skip
    if ui.can_control():
        cols = st.columns(len(BREAKER_ACTIONS) + 2)
        for col, (action, label) in zip(cols, BREAKER_ACTIONS.items(), strict=False):
            col.button(label, key=f"ctl_breaker_{action}_{svc['name']}", on_click=breaker_action,
                       args=(svc["name"], action))  # fmt: skip
    history_key = f"svc_hist_{svc['name']}"
    state[history_key] = samples.append_sample(
        state.get(history_key, []), {"t": now, "utilization": svc["utilization"]}
    )


def instances_panel(svc: dict[str, Any]) -> None:
    rows = [
        {
            "instance": i["id"],
            "health": i["health"]["status"],
            "in rotation": bool(i["healthy"]),
            "utilization": f"{i['utilization']:.0%}",
            "in flight": i["in_flight"],
            "capacity": i["capacity"],
            "checked": formats.clock(i["health"]["checked_at"])[11:],
            "latency ms": i["health"]["latency_ms"],
            "error": i["health"]["error"] or "",
            "url": i["url"],
        }
        for i in svc["instances"]
    ]
    st.dataframe(rows, hide_index=True, key=f"svc_instances_{svc['name']}")


def chaos_panel(name: str) -> None:
    if not ui.feature("chaos"):
        return
    with st.expander(f"Chaos knobs of {name} (demo)"):
        with ui.shown_errors():
            knobs = ui.read("chaos", name)["instances"]
            st.caption("In force: " + "; ".join(
                f"{iid}: " + ("unreachable" if k is None else
                              f"errors {k.get('error_rate', 0):.0%}, latency {k.get('latency_ms')}, "
                              f"down {k.get('down')}")
                for iid, k in knobs.items()))  # fmt: skip
        if not ui.can_control():
            return
        c1, c2, c3 = st.columns(3)
        c1.slider("Error rate", 0.0, 1.0, step=0.05, key=f"svc_err_{name}")
        c2.number_input("Extra latency, mean ms", min_value=0.0, max_value=10_000.0, step=10.0, key=f"svc_lat_{name}")
        c3.toggle("Hard down", key=f"svc_down_{name}")
        a, r, _ = st.columns([1, 1, 4])
        a.button("Apply chaos", key=f"ctl_chaos_{name}", on_click=apply_chaos, args=(name,))
        r.button("Reset chaos", key=f"ctl_chaos_reset_{name}", on_click=reset_chaos, args=(name,))


@st.fragment(run_every=ui.refresh_every())
def services() -> None:
    ui.live_caption()
    ui.show_flash()
    now = time.time()
    with ui.shown_errors():
        listed = ui.read("services")
        if not listed:
            st.info("No service endpoint is configured (`wes services apply`, or `wes up --demo`).")
            return
        since = (now - 3600) // 60 * 60
        series = ui.read("series", since=since, step=60)
        frame = sla.series_frame(series)
        calls = service_calls.service_calls_frame(series)
        trips = (series.get("breakdown") or {}).get("breaker_trips") or {}
        top = st.columns([1, 2])
        top[0].metric("Services available", formats.percent_text(service_state.availability(listed), 0))
        top[1].plotly_chart(sla.rate_figure(frame, "breaker_trips", "Breaker trips per minute (all services)",
                                               bars=True), key="svc_trips", config=PLOT_CONFIG)  # fmt: skip
        focus = state.get("svc_focus")
        ordered = sorted(listed, key=lambda s: (s["name"] != focus, s["name"]))
        for svc in ordered:
            for key in (f"svc_err_{svc['name']}", f"svc_lat_{svc['name']}", f"svc_down_{svc['name']}"):
                state.setdefault(key, 0.0 if not key.startswith("svc_down") else False)
            with st.container(border=True):
                st.subheader(svc["name"] + ("  ← from Overview" if svc["name"] == focus else ""))
                left, right = st.columns([3, 2])
                with left:
                    breaker_panel(svc, now, int(trips.get(svc["name"], 0)))
                    instances_panel(svc)
                with right:
                    st.plotly_chart(service_state.utilization_figure(svc["instances"]), key=f"svc_util_{svc['name']}",
                                    config=PLOT_CONFIG)  # fmt: skip
                    st.plotly_chart(service_calls.service_history_figure(calls, svc["name"], state[f"svc_hist_{svc['name']}"]),
                                    key=f"svc_hist_chart_{svc['name']}", config=PLOT_CONFIG)  # fmt: skip
                    recent = service_calls.calls_summary(calls, 300, 60, svc["name"])
                    st.caption(f"Last 5 min: {recent['calls']} calls, error rate "
                               f"{formats.percent_text(recent['error_rate'])}, availability "
                               f"{formats.percent_text(recent['availability'])} (the engine's rollups)")  # fmt: skip
                chaos_panel(svc["name"])


services()
