"""One workflow: status and controls, the step timeline, steps, compensation stack, events, context."""

from __future__ import annotations

import time
from typing import Any

import streamlit as st

from dashboard import ui
from dashboard.charts import formats, workflows

state = st.session_state
STATUS_BADGE = {
    "CREATED": "gray", "RUNNING": "blue", "PAUSED": "violet", "COMPLETED": "green", "FAILED": "red",
    "TIMEOUT": "red", "COMPENSATING": "orange", "COMPENSATED": "orange", "CANCELLED": "gray",
}  # fmt: skip
PLOT_CONFIG = {"displayModeBar": False}

ui.header("Workflow")
wanted = st.query_params.get("id")
if wanted and wanted != state.get("wf_shown_query"):
    state["workflow_id"] = wanted  # a deep link (or a switch from another page) wins once
    state["wf_shown_query"] = wanted


def open_typed() -> None:
    typed = str(state.get("wf_goto") or "").strip()
    if typed:
        state["workflow_id"] = typed
        state["wf_shown_query"] = typed
        st.query_params["id"] = typed
    state.pop("wf_cancel_pending", None)


g1, g2 = st.columns([4, 1], vertical_alignment="bottom")
g1.text_input("Workflow id", key="wf_goto", placeholder=state.get("workflow_id") or "paste a workflow id")
g2.button("Show", key="wf_goto_go", on_click=open_typed)


# ------------------------------------------------------------------------------ controls
def control(wid: str, action: str) -> None:
    state.pop("wf_cancel_pending", None)
    label = {"pause": "Paused", "resume": "Resumed", "cancel": "Cancelled (compensating)",
             "retry-compensation": "Compensation retry requested"}[action]  # fmt: skip
    ui.act(f"{label}: {wid}", ui.client().control, wid, action)


def ask_cancel(wid: str) -> None:
    state["wf_cancel_pending"] = wid


def abort_cancel() -> None:
    state.pop("wf_cancel_pending", None)


def controls(detail: dict[str, Any]) -> None:
    if not ui.can_control():
        return
    wid, status = detail["workflow_id"], detail["status"]
    retryable = bool(detail["failed_compensations"]) or (detail["requires_attention"] and status == "COMPENSATED")
    c1, c2, c3, c4, _ = st.columns([1, 1, 1, 1.6, 2])
    c1.button("Pause", key="ctl_pause", icon=":material/pause:", on_click=control, args=(wid, "pause"),
              disabled=status != "RUNNING", help="The step in flight finishes; no new step starts.")  # fmt: skip
    c2.button("Resume", key="ctl_resume", icon=":material/play_arrow:", on_click=control, args=(wid, "resume"),
              disabled=status != "PAUSED")  # fmt: skip
    c3.button("Cancel", key="ctl_cancel", icon=":material/cancel:", on_click=ask_cancel, args=(wid,),
              disabled=status not in ("CREATED", "RUNNING", "PAUSED"),
              help="Compensates the completed steps (newest first).")  # fmt: skip
    c4.button("Retry compensation", key="ctl_retry_compensation", icon=":material/replay:", on_click=control,
              args=(wid, "retry-compensation"), disabled=not retryable,
              help="Run the failed (or parked) compensations again.")  # fmt: skip
    if state.get("wf_cancel_pending") == wid:
        with st.container(border=True):
            st.warning(f"**Cancel {wid}?** Its completed steps will be compensated.")
            y, n, _ = st.columns([1, 1, 4])
            y.button("Yes, cancel", key="ctl_cancel_confirm", type="primary", on_click=control, args=(wid, "cancel"))
            n.button("No", key="wf_cancel_abort", on_click=abort_cancel)


# ------------------------------------------------------------------------------ the live part
def summary(detail: dict[str, Any], now: float) -> None:
    times = detail["times"]
    st.markdown(f"### `{detail['workflow_id']}`")
    st.badge(detail["status"], color=STATUS_BADGE.get(detail["status"], "gray"))
    duration = detail["duration"] if detail["duration"] is not None else now - times["created_at"]
    facts = [
        ("Definition", f"`{detail['workflow_type']}` v{detail['definition_version']}"),
        ("Consistency", f"`{detail['consistency']}`"),
        ("Correlation id", f"`{detail['correlation_id']}`" if detail["correlation_id"] else "—"),
        ("Created", f"{formats.ago(times['created_at'], now)} ({formats.clock(times['created_at'])} UTC)"),
        ("Duration", formats.seconds_text(duration)),
        ("Retries (steps / compensations)", f"{detail['total_retries']} / {detail['compensation_retries']}"),
    ]
    for col, (label, value) in zip(st.columns([2, 2, 2, 3, 1, 2]), facts, strict=True):
        col.caption(label)
        col.markdown(value)
    if detail["requires_attention"]:
        failed = ", ".join(detail["failed_compensations"]) or "—"
        st.warning(f"**Requires attention.** Failed compensations: {failed}"
                   + (" · compensation ran past its budget" if detail["compensation_timed_out"] else ""))  # fmt: skip
    notes = [f"reason: {detail['reason']}" if detail["reason"] else "",
             f"compensation: {detail['compensation_reason']}" if detail["compensation_reason"] else "",
             "waiting for a resource lock" if detail["waiting_for_lock"] else ""]  # fmt: skip
    if any(notes):
        st.caption(" · ".join(n for n in notes if n))


@st.fragment(run_every=ui.refresh_every())
def workflow() -> None:
    wid = state.get("workflow_id")
    if not wid:
        st.info("Open a workflow from the Workflows or Overview page, or paste its id above.")
        return
    ui.live_caption()
    ui.show_flash()
    now = time.time()
    with ui.shown_errors():
        detail = ui.read("workflow", wid)
        summary(detail, now)
        controls(detail)
        st.plotly_chart(workflows.step_timeline(detail, now), key="wf_timeline", config=PLOT_CONFIG)
        left, right = st.columns([3, 2])
        with left:
            st.markdown("**Steps**")
            st.dataframe(workflows.steps_frame(detail), hide_index=True, key="wf_steps")
        with right:
            st.markdown("**Compensation stack** (the last is compensated first)")
            stack = detail["compensation_stack"]
            if stack:
                st.dataframe([{"#": n, "step": s} for n, s in enumerate(stack, 1)][::-1], hide_index=True,
                             key="wf_stack")  # fmt: skip
            else:
                st.caption("empty: nothing to compensate")
            saga = detail["saga"]
            st.caption(f"phase {saga['phase']} · step {saga['current_step']} of {saga['total_steps']}")
        st.markdown("**Events**")
        events = ui.read("events", wid)
        st.dataframe(workflows.events_frame(events), hide_index=True, key="wf_events")
        with st.expander("Context and input"):
            st.json({"input": detail["input"], "context": detail["context"], "result": detail["result"]},
                    expanded=1)  # fmt: skip


workflow()
