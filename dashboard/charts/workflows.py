"""Workflow lists and one workflow's detail: the step timeline, steps and events."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

from dashboard.charts.formats import ago, clock, to_time
from dashboard.charts.style import LIGHTS, STEP_COLORS, small


def timeline_frame(detail: Mapping[str, Any], now: float) -> pd.DataFrame:
    """One row per forward attempt window and per compensation window of the workflow's steps."""
    rows = []
    for s in detail.get("steps") or []:
        if s.get("started_at") is not None:
            end = s.get("ended_at") or now
            rows.append({"step": s["step_id"], "phase": "forward", "state": s["status"], "attempt": s.get("attempt", 0),
                         "start": to_time(s["started_at"]), "end": to_time(max(end, s["started_at"] + 0.001))})  # fmt: skip
        comp = s.get("compensation") or {}
        if comp.get("started_at") is not None:
            end = comp.get("ended_at") or now
            state = "compensation failed" if comp.get("error") and not comp.get("running") else "compensation"
            rows.append({"step": s["step_id"], "phase": "compensation", "state": state,
                         "attempt": comp.get("attempt", 0), "start": to_time(comp["started_at"]),
                         "end": to_time(max(end, comp["started_at"] + 0.001))})  # fmt: skip
    return pd.DataFrame(rows, columns=["step", "phase", "state", "attempt", "start", "end"])


def step_timeline(detail: Mapping[str, Any], now: float) -> go.Figure:
    """Gantt chart of the steps (forward attempts, then compensations) in declared order."""
    frame = timeline_frame(detail, now)
    order = [s["step_id"] for s in detail.get("steps") or []]
    height = 90 + 36 * max(1, len(order))
    if frame.empty:
        fig = go.Figure()
        fig.add_annotation(text="no step has started yet", showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper")
        fig.update_xaxes(visible=False)
        fig.update_yaxes(visible=False)
        return small(fig, "Step timeline", height=height)
    colors = {**STEP_COLORS, "compensation failed": LIGHTS["red"]}
    fig = px.timeline(
        frame,
        x_start="start",
        x_end="end",
        y="step",
        color="state",
        color_discrete_map=colors,
        hover_data={"phase": True, "attempt": True},
        category_orders={"step": order},
    )
    small(fig, "Step timeline", height=height)
    fig.update_layout(showlegend=True, hovermode="closest", legend={"orientation": "h", "title": None,
                      "x": 1, "xanchor": "right", "y": 1.02, "yanchor": "bottom"})  # fmt: skip
    return fig


def events_frame(events: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    rows = [
        {
            "version": e["version"],
            "at": clock(e.get("at")),
            "type": e["type"],
            "step": (e.get("data") or {}).get("step_id") or "",
            "data": _compact(e.get("data") or {}),
        }
        for e in events
    ]
    return pd.DataFrame(rows, columns=["version", "at", "type", "step", "data"])


def _compact(data: Mapping[str, Any], limit: int = 200) -> str:
    text = ", ".join(f"{k}={v}" for k, v in data.items() if k != "step_id")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def steps_frame(detail: Mapping[str, Any]) -> pd.DataFrame:
    rows = []
    for s in detail.get("steps") or []:
        comp = s.get("compensation") or {}
        error = s.get("error") or comp.get("error") or {}
        rows.append(
            {
                "step": s["step_id"],
                "status": s["status"],
                "attempt": s.get("attempt", 0),
                "started": clock(s.get("started_at")),
                "seconds": None if s.get("execution_time") is None else round(float(s["execution_time"]), 4),
                "compensation": comp.get("type", ""),
                "error": (error.get("message") or error.get("type") or "") if isinstance(error, dict) else str(error),
            }
        )
    return pd.DataFrame(rows, columns=["step", "status", "attempt", "started", "seconds", "compensation", "error"])


def workflows_frame(items: Sequence[Mapping[str, Any]], now: float) -> pd.DataFrame:
    rows = [
        {
            "workflow_id": i["workflow_id"],
            "definition": i["workflow_type"],
            "status": i["status"],
            "attention": "⚠" if i.get("requires_attention") else "",
            "correlation_id": i.get("correlation_id", ""),
            "created": clock(i.get("created_at")),
            "updated": ago(i.get("updated_at"), now),
        }
        for i in items
    ]
    return pd.DataFrame(
        rows, columns=["workflow_id", "definition", "status", "attention", "correlation_id", "created", "updated"]
    )


def stuck(items: Iterable[Mapping[str, Any]], now: float, after_s: float) -> list[dict[str, Any]]:
    """Workflows in a moving state whose state has not changed for ``after_s`` seconds."""
    moving = {"CREATED", "RUNNING", "COMPENSATING"}
    return [dict(i) for i in items if i.get("status") in moving and now - float(i.get("updated_at") or now) >= after_s]
