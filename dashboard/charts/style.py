"""Colours and the layout of the dashboard's small figures."""

from __future__ import annotations

import plotly.graph_objects as go

LIGHTS = {"green": "#2e7d32", "amber": "#ef8f00", "red": "#c62828", "grey": "#9e9e9e"}
STATUS_COLORS = {
    "CREATED": "#90a4ae",
    "RUNNING": "#1e88e5",
    "PAUSED": "#8e24aa",
    "COMPLETED": "#2e7d32",
    "FAILED": "#c62828",
    "TIMEOUT": "#d84315",
    "COMPENSATING": "#ef8f00",
    "COMPENSATED": "#6d4c41",
    "CANCELLED": "#616161",
}
STEP_COLORS = {
    "PENDING": "#b0bec5",
    "RUNNING": "#1e88e5",
    "COMPLETED": "#2e7d32",
    "FAILED": "#c62828",
    "SKIPPED": "#9e9e9e",
    "COMPENSATING": "#ef8f00",
    "COMPENSATED": "#6d4c41",
    "compensation": "#ef8f00",
}
FIG_HEIGHT = 200


def small(fig: go.Figure, title: str | None = None, height: int = FIG_HEIGHT) -> go.Figure:
    fig.update_layout(
        height=height,
        margin={"l": 8, "r": 8, "t": 32 if title else 8, "b": 8},
        title={"text": title, "font": {"size": 13}} if title else None,
        showlegend=False,
        hovermode="x unified",
    )
    fig.update_xaxes(title=None)
    fig.update_yaxes(title=None, rangemode="tozero")
    return fig
