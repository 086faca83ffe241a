"""The waveless release controller: batch size, rate limit and queue depth over time, and its decisions."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from dashboard.charts.formats import clock

WAVELESS_FIELDS = ("batch_size", "rate", "queue_depth")


def waveless_points(decisions: Sequence[Mapping[str, Any]], samples: Sequence[Mapping[str, Any]] = ()) -> pd.DataFrame:
    """Batch size, rate and queue depth over time: the controller's decisions (each records them)
    merged with the status samples a page took."""
    rows = []
    for d in decisions:
        at = _number(d.get("at"))
        if at is None:
            continue
        rows.append({"t": at, **{f: _number(d.get(f)) for f in WAVELESS_FIELDS}, "source": "decision"})
    for s in samples:
        rows.append({"t": float(s["t"]), **{f: _number(s.get(f)) for f in WAVELESS_FIELDS}, "source": "sample"})
    frame = pd.DataFrame(rows, columns=["t", *WAVELESS_FIELDS, "source"])
    if frame.empty:
        frame["time"] = pd.Series(dtype="datetime64[ns, UTC]")
        return frame
    frame = frame.sort_values("t").drop_duplicates(subset=["t"], keep="last").reset_index(drop=True)
    frame["time"] = pd.to_datetime((frame["t"] * 1e6).round().astype("int64"), unit="us", utc=True)
    return frame


def waveless_figure(frame: pd.DataFrame) -> go.Figure:
    """Three stacked panels sharing time: batch size, release rate limit, queue depth."""
    fig = make_subplots(rows=3, cols=1, shared_xaxes=True, vertical_spacing=0.08,
                        subplot_titles=("Batch size", "Rate limit (orders/s)", "Queue depth"))  # fmt: skip
    for row, (field, color) in enumerate(
        (("batch_size", "#1e88e5"), ("rate", "#2e7d32"), ("queue_depth", "#ef8f00")), start=1
    ):
        x = frame["time"] if not frame.empty else []
        y = frame[field] if not frame.empty else []
        fig.add_trace(go.Scatter(x=x, y=y, mode="lines+markers", line={"shape": "hv", "color": color}, name=field),
                      row=row, col=1)  # fmt: skip
    fig.update_layout(height=480, margin={"l": 8, "r": 8, "t": 32, "b": 8}, showlegend=False)
    fig.update_yaxes(rangemode="tozero")
    return fig


def decisions_frame(decisions: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    rows = [
        {
            "at": clock(_number(d.get("at"))),
            "kind": d.get("kind", ""),
            "batch": _number(d.get("batch_size")),
            "rate": _number(d.get("rate")),
            "queue": _number(d.get("queue_depth")),
            "utilization": _number(d.get("utilization")),
            "reason": d.get("reason") or "",
            "by": d.get("by") or "",
        }
        for d in decisions
    ]
    return pd.DataFrame(rows, columns=["at", "kind", "batch", "rate", "queue", "utilization", "reason", "by"])


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None or value == "":
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(out) else out
