"""Workflows: a filtered, cursor-paginated list; select several for a bulk pause / resume / cancel
(confirmed first); open one on the Workflow page."""

from __future__ import annotations

import time
from typing import Any

import streamlit as st

from dashboard import ui
from dashboard.charts import workflows

ANY = "(any)"
STATUSES = ("CREATED", "RUNNING", "PAUSED", "COMPLETED", "FAILED", "TIMEOUT", "COMPENSATING", "COMPENSATED",
            "CANCELLED")  # fmt: skip
PAGE_SIZES = (10, 25, 50, 100, 200)
BULK = {"pause": "Pause", "resume": "Resume", "cancel": "Cancel"}

ui.header("Workflows")
state = st.session_state
state.setdefault("wf_status", ANY)
state.setdefault("wf_definition", ANY)
state.setdefault("wf_corr", "")
state.setdefault("wf_attention", False)
state.setdefault("wf_limit", 25)
state.setdefault("wf_selected", [])
state.setdefault("wf_cursors", [None])


def first_page() -> None:
    state["wf_cursors"] = [None]


def definition_names() -> list[str]:
    names: list[str] = []
    with ui.shown_errors():
        names = sorted({d["name"] for d in ui.read("definitions")})
    if state["wf_definition"] not in (ANY, *names):
        names.append(state["wf_definition"])
    return [ANY, *names]


c1, c2, c3, c4, c5 = st.columns([2, 3, 3, 2, 1.5], vertical_alignment="bottom")
c1.selectbox("Status", [ANY, *STATUSES], key="wf_status", on_change=first_page)
c2.selectbox("Definition", definition_names(), key="wf_definition", on_change=first_page)
c3.text_input("Correlation id", key="wf_corr", on_change=first_page, placeholder="exact correlation id")
c4.toggle("Requires attention", key="wf_attention", on_change=first_page)
c5.selectbox("Per page", PAGE_SIZES, key="wf_limit", on_change=first_page)


def filters() -> dict[str, Any]:
    return {
        "status": None if state["wf_status"] == ANY else state["wf_status"],
        "definition": None if state["wf_definition"] == ANY else state["wf_definition"],
        "correlation_id": state["wf_corr"].strip() or None,
        "requires_attention": bool(state["wf_attention"]),
        "limit": int(state["wf_limit"]),
    }


# ------------------------------------------------------------------------------ callbacks
def next_page(cursor: str) -> None:
    state["wf_cursors"] = [*state["wf_cursors"], cursor]


def previous_page() -> None:
    state["wf_cursors"] = state["wf_cursors"][:-1] or [None]


def select_all(ids: list[str]) -> None:
    state["wf_selected"] = list(dict.fromkeys([*state["wf_selected"], *ids]))


def clear_selection() -> None:
    state["wf_selected"] = []


def ask(action: str) -> None:
    if state["wf_selected"]:
        state["wf_pending"] = {"action": action, "ids": list(state["wf_selected"])}
    else:
        ui.flash("warning", "Select workflows first.")


def abort() -> None:
    state.pop("wf_pending", None)


def confirm() -> None:
    pending = state.pop("wf_pending", None)
    if not pending:
        return
    reason = str(state.get("wf_reason") or "").strip() or None
    result = ui.act(f"{BULK[pending['action']]}: {len(pending['ids'])} requested", ui.client().bulk,
                    pending["action"], pending["ids"], reason)  # fmt: skip
    if result is not None:
        state["wf_bulk_result"] = result


# ------------------------------------------------------------------------------ the live part
def bulk_controls(ids_on_page: list[str]) -> None:
    b1, b2, b3, b4, b5 = st.columns(5)
    b1.button("Select page", key="wf_select_page", on_click=select_all, args=(ids_on_page,))
    b2.button("Clear selection", key="wf_clear", on_click=clear_selection)
    if not ui.can_control():
        return
    for col, (action, label) in zip((b3, b4, b5), BULK.items(), strict=True):
        col.button(f"{label} selected", key=f"ctl_bulk_{action}", on_click=ask, args=(action,),
                   disabled=not state["wf_selected"])  # fmt: skip
    pending = state.get("wf_pending")
    if pending:
        with st.container(border=True):
            st.warning(f"**{BULK[pending['action']]} {len(pending['ids'])} workflow(s)?** "
                       + ", ".join(pending["ids"][:10]) + (" …" if len(pending["ids"]) > 10 else ""))  # fmt: skip
            if pending["action"] in ("pause", "cancel"):
                st.text_input("Reason (optional, recorded in the audit log)", key="wf_reason")
            y, n, _ = st.columns([1, 1, 4])
            y.button(f"Yes, {pending['action']}", key="ctl_bulk_confirm", type="primary", on_click=confirm)
            n.button("No", key="wf_bulk_abort", on_click=abort)


def bulk_result() -> None:
    result = state.get("wf_bulk_result")
    if not result:
        return
    text = f"Bulk {result['action']}: {result['succeeded']} of {result['requested']} succeeded"
    (st.success if not result["failed"] else st.warning)(text)
    failed = [{"workflow_id": r["workflow_id"], "error": (r.get("error") or {}).get("detail", "")}
              for r in result["results"] if not r["ok"]]  # fmt: skip
    if failed:
        st.dataframe(failed, hide_index=True, key="wf_bulk_failures")


@st.fragment(run_every=ui.refresh_every())
def table() -> None:
    ui.live_caption()
    ui.show_flash()
    now = time.time()
    with ui.shown_errors():
        cursor = state["wf_cursors"][-1]
        page = ui.read("workflows", cursor=cursor, **filters())
        items = page["items"]
        ids = [i["workflow_id"] for i in items]
        by_id = {i["workflow_id"]: i for i in items}
        st.caption(f"Page {len(state['wf_cursors'])} · {len(items)} workflow(s), newest first")
        st.dataframe(
            workflows.workflows_frame(items, now),
            hide_index=True,
            key="wf_table",
            column_config={
                "workflow_id": st.column_config.TextColumn("Workflow", width="medium"),
                "attention": st.column_config.TextColumn("⚠", width="small", help="Requires attention"),
            },
        )
        p1, p2, p3, _ = st.columns([1, 1, 1, 5])
        p1.button("First page", key="wf_first", on_click=first_page, disabled=cursor is None)
        p2.button("Previous", key="wf_prev", on_click=previous_page, disabled=len(state["wf_cursors"]) < 2)
        if page["next_cursor"]:
            p3.button("Next", key="wf_next", on_click=next_page, args=(page["next_cursor"],))

        def label(wid: str) -> str:
            item = by_id.get(wid)
            return f"{wid} · {item['workflow_type']} · {item['status']}" if item else wid

        options = list(dict.fromkeys([*state["wf_selected"], *ids]))
        st.multiselect("Selected workflows", options, key="wf_selected", format_func=label,
                       placeholder="Pick workflows for a bulk action")  # fmt: skip
        bulk_controls(ids)
        bulk_result()

        st.divider()
        o1, o2 = st.columns([4, 1], vertical_alignment="bottom")
        if state.get("wf_open") not in (None, *ids):
            state["wf_open"] = None
        o1.selectbox("Open a workflow", ids, key="wf_open", format_func=label, index=None,
                     placeholder="Choose a workflow on this page")  # fmt: skip
        if o2.button("Open", key="wf_open_go", disabled=not state.get("wf_open")):
            ui.go("workflow", workflow_id=state["wf_open"])


table()
