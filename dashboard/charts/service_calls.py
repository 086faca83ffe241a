"""Service calls over time from the engine's rollups: availability and error rate, overall and per service."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

from dashboard.charts.formats import to_time
from dashboard.charts.style import LIGHTS, small

CALL_OUTCOMES = ("ok", "failed", "refused")
ALL_SERVICES = "all services"
SERVICE_COLUMNS = ("time", "service", *CALL_OUTCOMES, "calls", "availability", "error_rate")
SERVICE_PALETTE = px.colors.qualitative.Plotly


def service_calls_frame(series: Mapping[str, Any]) -> pd.DataFrame:
    """``GET /sla/series`` as one row per point and service (every service seen in the range, zeros
    where it had no call, so its line has gaps, not jumps), plus the ``all services`` total: the call
    outcomes, availability (ok / all calls) and error rate (failed / ok + failed); None without calls."""
    points = series.get("points") or []
    names = sorted({name for p in points for name, c in (p.get("by_service") or {}).items()
                    if any(f"service_calls.{o}" in c for o in CALL_OUTCOMES)})  # fmt: skip
    rows = []
    for p in points:
        by = p.get("by_service") or {}
        total = dict.fromkeys(CALL_OUTCOMES, 0)
        for name in names:
            counts = {o: int((by.get(name) or {}).get(f"service_calls.{o}", 0)) for o in CALL_OUTCOMES}
            for o in CALL_OUTCOMES:
                total[o] += counts[o]
            rows.append(_call_row(p["start"], name, counts))
        if names:
            rows.append(_call_row(p["start"], ALL_SERVICES, total))
    frame = pd.DataFrame(rows, columns=list(SERVICE_COLUMNS))
    for col in ("availability", "error_rate"):
        frame[col] = pd.to_numeric(frame[col], errors="coerce")
    return frame


def _call_row(start: float, service: str, counts: Mapping[str, int]) -> dict[str, Any]:
    calls = sum(counts.values())
    answered = counts["ok"] + counts["failed"]
    return {
        "time": to_time(start),
        "service": service,
        **counts,
        "calls": calls,
        "availability": counts["ok"] / calls if calls else None,
        "error_rate": counts["failed"] / answered if answered else None,
    }


def service_names(frame: pd.DataFrame) -> list[str]:
    """The services of :func:`service_calls_frame`, without the total."""
    if frame.empty:
        return []
    return sorted(str(s) for s in frame["service"].unique() if s != ALL_SERVICES)


def calls_summary(frame: pd.DataFrame, seconds: float, step_s: float, service: str = ALL_SERVICES) -> dict[str, Any]:
    """Availability and error rate of one service (or all) over the last ``seconds`` of the series."""
    rows = frame[frame["service"] == service] if not frame.empty else frame
    if rows.empty:
        return {"calls": 0, "availability": None, "error_rate": None}
    tail = rows.tail(max(1, math.ceil(seconds / step_s)))
    ok, failed, calls = (int(tail[c].sum()) for c in ("ok", "failed", "calls"))
    return {
        "calls": calls,
        "availability": ok / calls if calls else None,
        "error_rate": failed / (ok + failed) if ok + failed else None,
    }


def service_lines_figure(
    frame: pd.DataFrame,
    column: str,
    title: str,
    *,
    services: Sequence[str] | None = None,
    overall: bool = True,
) -> go.Figure:
    """``availability`` or ``error_rate`` of :func:`service_calls_frame` over time: one line per
    service (``services``: only these) and, with ``overall``, the total as a thicker dark line."""
    fig = go.Figure()
    names = list(services) if services is not None else service_names(frame)
    for i, name in enumerate(names):
        rows = frame[frame["service"] == name] if not frame.empty else frame
        fig.add_trace(go.Scatter(x=rows["time"] if not rows.empty else [], y=rows[column] if not rows.empty else [],
                                 name=name, mode="lines+markers", connectgaps=False, marker={"size": 4},
                                 line={"width": 1.5, "color": SERVICE_PALETTE[i % len(SERVICE_PALETTE)]}))  # fmt: skip
    if overall:
        rows = frame[frame["service"] == ALL_SERVICES] if not frame.empty else frame
        fig.add_trace(go.Scatter(x=rows["time"] if not rows.empty else [], y=rows[column] if not rows.empty else [],
                                 name=ALL_SERVICES, mode="lines", connectgaps=False,
                                 line={"width": 3, "color": "#263238"}))  # fmt: skip
    small(fig, title)
    fig.update_layout(showlegend=len(fig.data) > 1, legend={"orientation": "h", "y": -0.25})
    fig.update_yaxes(tickformat=".0%", range=[0, 1.05])
    return fig


def service_history_figure(frame: pd.DataFrame, service: str, samples: Sequence[Mapping[str, Any]] = ()) -> go.Figure:
    """One service over the last hour: its error rate and availability from the rollups (``frame`` of
    :func:`service_calls_frame`), and its utilization as sampled while the page is open (``samples``
    with ``t`` and ``utilization``; the API keeps no history of it)."""
    rows = frame[frame["service"] == service] if not frame.empty else frame
    x = rows["time"] if not rows.empty else []
    fig = go.Figure()
    for column, label, color in (("error_rate", "error rate", LIGHTS["red"]),
                                 ("availability", "availability", LIGHTS["green"])):  # fmt: skip
        y = rows[column] if not rows.empty else []
        fig.add_trace(go.Scatter(x=x, y=y, name=label, mode="lines+markers", connectgaps=False, marker={"size": 4},
                                 line={"width": 2, "color": color}))  # fmt: skip
    fig.add_trace(go.Scatter(x=[to_time(h["t"]) for h in samples], y=[h.get("utilization") for h in samples],
                             name="utilization (sampled)", mode="lines", line={"dash": "dot", "color": "#1e88e5"}))  # fmt: skip
    small(fig, "Error rate and availability, last hour")
    fig.update_layout(showlegend=True, legend={"orientation": "h", "y": -0.25})
    fig.update_yaxes(tickformat=".0%", range=[0, 1.05])
    return fig
