"""SLA tiles (``GET /sla``), the dispatch lag (its ``indicators``) and the saga rates of the engine's
rollups (``GET /sla/series``)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from dashboard.charts.formats import percent_text, seconds_text, to_time
from dashboard.charts.style import LIGHTS, small

STEP_OUTCOMES = ("completed", "failed", "retried", "recovered")
DISPATCH_LAG = "dispatch_lag"
"""The latency indicator of the Overview's dispatch-lag tile: from due to claimed by a worker."""


def sla_light(target: Mapping[str, Any]) -> str:
    """green / amber / red / grey for one row of ``GET /sla`` (see the ``dashboard.charts`` docstring)."""
    if not target.get("count"):
        return "grey"
    if target.get("met") is False:
        return "red"
    if target.get("bar_met") is False:
        return "amber"
    return "green"


def sla_tiles(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One dict per SLA target with the texts a tile shows."""
    out = []
    for t in report.get("targets") or []:
        light = sla_light(t)
        out.append(
            {
                "name": t["name"],
                "title": (t.get("description") or t["name"]).capitalize(),
                "light": light,
                "color": LIGHTS[light],
                "count": int(t.get("count") or 0),
                "compliance": percent_text(t.get("compliance"), 2),
                "objective": percent_text(t.get("objective"), 1),
                "target": seconds_text(t.get("target_s")),
                "p90": seconds_text(t.get("p90_s")),
                "p95": seconds_text(t.get("p95_s")),
                "p99": seconds_text(t.get("p99_s")),
                "bar": seconds_text(t.get("bar_s")),
                "bar_p99": seconds_text(t.get("bar_p99_s")),
                "bar_metric": t.get("bar_metric"),
            }
        )
    return out


def indicator_tile(report: Mapping[str, Any], name: str = DISPATCH_LAG) -> dict[str, Any]:
    """The texts of a latency indicator's tile from ``GET /sla``'s ``indicators``: the quantile our bar is
    on, the bar, and a light (green: bar met, amber: missed, grey: no data in the window)."""
    row = next((i for i in report.get("indicators") or [] if i.get("name") == name), {})
    quantile = float(row.get("quantile") or 0.95)
    label = f"p{round(quantile * 100)}"
    count = int(row.get("count") or 0)
    met = row.get("bar_met")
    light = "grey" if not count or met is None else ("green" if met else "amber")
    return {
        "label": label,
        "value": seconds_text(row.get(f"{label}_s")) if count else "no data",
        "bar": seconds_text(row.get("bar_s")),
        "bar_s": row.get("bar_s"),
        "count": count,
        "light": light,
    }


SERIES_COLUMNS = (
    "time", "started", "completed", "compensated", "finished", "compensations_started", "step_attempts",
    "steps_retried", "breaker_trips", "completion_per_min", "success_rate", "compensation_per_min", "retry_rate",
    "started_per_s", "dispatch_lag_p95_s",
)  # fmt: skip


def series_frame(series: Mapping[str, Any]) -> pd.DataFrame:
    """``GET /sla/series`` as one row per point with the derived rates of the tiles."""
    step = float(series.get("step_s") or 10)
    rows = []
    for p in series.get("points") or []:
        c = p.get("counters") or {}
        completed = int(c.get("workflows_finished.completed", 0))
        compensated = int(c.get("workflows_finished.compensated", 0))
        attempts = sum(int(c.get(f"steps.{o}", 0)) for o in STEP_OUTCOMES)
        retried = int(c.get("steps.retried", 0))
        comp_started = int(c.get("compensations_started", 0))
        finished = completed + compensated
        lag = (p.get("latency") or {}).get(DISPATCH_LAG) or {}
        rows.append(
            {
                "time": to_time(p["start"]),
                "started": int(c.get("workflows_started", 0)),
                "completed": completed,
                "compensated": compensated,
                "finished": finished,
                "compensations_started": comp_started,
                "step_attempts": attempts,
                "steps_retried": retried,
                "breaker_trips": int(c.get("breaker_trips", 0)),
                "completion_per_min": completed * 60.0 / step,
                "success_rate": completed / finished if finished else None,
                "compensation_per_min": comp_started * 60.0 / step,
                "retry_rate": retried / attempts if attempts else None,
                "started_per_s": int(c.get("workflows_started", 0)) / step,
                "dispatch_lag_p95_s": lag.get("p95_s"),
            }
        )
    frame = pd.DataFrame(rows, columns=list(SERIES_COLUMNS))
    for col in ("success_rate", "retry_rate", "dispatch_lag_p95_s"):
        frame[col] = pd.to_numeric(frame[col], errors="coerce")
    return frame


def window_summary(frame: pd.DataFrame, seconds: float, step_s: float) -> dict[str, float | None]:
    """The tiles' current values: totals over the last ``seconds`` of the series."""
    if frame.empty:
        return {"completion_per_min": 0.0, "success_rate": None, "compensation_per_min": 0.0,
                "retry_rate": None, "breaker_trips": 0.0}  # fmt: skip
    n = max(1, math.ceil(seconds / step_s))
    tail = frame.tail(n)
    minutes = len(tail) * step_s / 60.0
    finished = float(tail["finished"].sum())
    attempts = float(tail["step_attempts"].sum())
    return {
        "completion_per_min": float(tail["completed"].sum()) / minutes,
        "success_rate": float(tail["completed"].sum()) / finished if finished else None,
        "compensation_per_min": float(tail["compensations_started"].sum()) / minutes,
        "retry_rate": float(tail["steps_retried"].sum()) / attempts if attempts else None,
        "breaker_trips": float(tail["breaker_trips"].sum()),
    }


def rate_figure(
    frame: pd.DataFrame,
    column: str,
    title: str,
    *,
    percent: bool = False,
    bars: bool = False,
    target: float | None = None,
) -> go.Figure:
    """One metric of :func:`series_frame` over time (a line, or bars for counts)."""
    fig = go.Figure()
    x = frame["time"] if not frame.empty else []
    y = frame[column] if not frame.empty else []
    if bars:
        fig.add_trace(go.Bar(x=x, y=y, name=title, marker_color="#c62828"))
    else:
        fig.add_trace(go.Scatter(x=x, y=y, name=title, mode="lines+markers", line={"width": 2}, marker={"size": 4},
                                 connectgaps=False))  # fmt: skip
    if target is not None:
        fig.add_hline(y=target, line_dash="dot", line_color=LIGHTS["green"], annotation_text="objective")
    small(fig, title)
    if percent:
        fig.update_yaxes(tickformat=".0%", range=[0, 1.05])
    return fig


def latency_figure(frame: pd.DataFrame, column: str, title: str, bar: float | None = None) -> go.Figure:
    """A latency column of :func:`series_frame` over time (seconds; gaps where nothing was measured),
    with our bar as a dotted line."""
    fig = go.Figure()
    x = frame["time"] if not frame.empty else []
    y = frame[column] if not frame.empty else []
    fig.add_trace(go.Scatter(x=x, y=y, name=title, mode="lines+markers", line={"width": 2}, marker={"size": 4},
                             connectgaps=False))  # fmt: skip
    if bar is not None:
        fig.add_hline(y=bar, line_dash="dot", line_color=LIGHTS["amber"], annotation_text="our bar")
    small(fig, title)
    fig.update_yaxes(ticksuffix=" s")
    return fig
