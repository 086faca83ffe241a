"""Values the API keeps no history of, sampled by a page while it is open and kept in its session."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import plotly.graph_objects as go

from dashboard.charts.formats import to_time
from dashboard.charts.style import small


def append_sample(
    history: Sequence[Mapping[str, Any]], sample: Mapping[str, Any], *, keep_s: float = 3600, max_len: int = 1440
) -> list[dict[str, Any]]:
    """Add a timestamped sample (``t`` in epoch seconds), dropping those older than ``keep_s`` and a
    repeat of the same ``t``. For numbers the API has no history of (sampled while a page is open)."""
    out = [dict(h) for h in history if h["t"] >= sample["t"] - keep_s and h["t"] != sample["t"]]
    out.append(dict(sample))
    out.sort(key=lambda h: h["t"])
    return out[-max_len:]


def history_figure(
    history: Sequence[Mapping[str, Any]], fields: Mapping[str, str], title: str, *, percent: bool = False
) -> go.Figure:
    """Lines of sampled values: ``fields`` maps a sample key to its legend label."""
    fig = go.Figure()
    times = [to_time(h["t"]) for h in history]
    for key, label in fields.items():
        fig.add_trace(go.Scatter(x=times, y=[h.get(key) for h in history], name=label, mode="lines+markers"))
    small(fig, title)
    fig.update_layout(showlegend=len(fields) > 1, legend={"orientation": "h", "y": -0.25})
    if percent:
        fig.update_yaxes(tickformat=".0%", range=[0, 1.05])
    return fig
